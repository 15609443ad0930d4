"""Stripe Connect payouts: a Transfer from the platform balance to a creator's connected account, and the
creator's onboarding (an Express connected account, then an Account Link to Stripe's hosted onboarding).

Through the same ``StripeClient`` (``STRIPE_API_KEY``, pinned ``STRIPE_API_VERSION``) as the
rest of the Stripe adapter. Every transfer carries the payout's own idempotency key
(``payout:<id>``): Stripe answers a repeated key with the first transfer instead of sending
the money again, which is what makes a crashed or repeated paying run safe.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import stripe
from django.conf import settings
from djmoney.money import Money

from monetization.money import minor_from_money, money_from_minor
from monetization.providers.base import PayoutError, TransferResult


@dataclass(frozen=True)
class OnboardingLink:
    """Stripe's hosted onboarding page for one connected account: single use, expires within minutes."""

    account_id: str
    url: str
    expires_at: datetime.datetime


class StripeConnectPayouts:
    """``http_client`` is injectable so tests replay recorded responses."""

    name = "stripe_connect"

    def __init__(self, *, http_client: stripe.HTTPClient | None = None):
        self.http_client = http_client
        self._client: stripe.StripeClient | None = None
        self._client_key: tuple | None = None

    @property
    def client(self) -> stripe.StripeClient:
        key = (settings.STRIPE_API_KEY, settings.STRIPE_API_VERSION, id(self.http_client))
        if self._client is None or self._client_key != key:
            if not settings.STRIPE_API_KEY:
                raise PayoutError("STRIPE_API_KEY is not configured.")
            self._client = stripe.StripeClient(
                settings.STRIPE_API_KEY,
                stripe_version=settings.STRIPE_API_VERSION,
                http_client=self.http_client,
                max_network_retries=2,
            )
            self._client_key = key
        return self._client

    def transfer(self, *, destination: str, amount: Money, idempotency_key: str) -> TransferResult:
        try:
            transfer = self.client.v1.transfers.create(
                params={
                    "amount": minor_from_money(amount),
                    "currency": str(amount.currency).lower(),
                    "destination": destination,
                    "metadata": {"idempotency_key": idempotency_key},
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:  # card, network, account errors: the run marks the payout failed
            raise PayoutError(str(exc)) from exc
        data = transfer.to_dict()
        return TransferResult(
            transfer_id=data["id"],
            amount=money_from_minor(data["amount"], data["currency"]),
            destination=data.get("destination") or destination,
        )

    def account_create(self, *, email: str, country: str, idempotency_key: str) -> str:
        """An Express connected account that can receive transfers; its id. A repeated key returns the same one."""
        params: dict = {
            "type": "express",
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"idempotency_key": idempotency_key},
        }
        if email:
            params["email"] = email
        if country:
            params["country"] = country
        try:
            account = self.client.v1.accounts.create(params=params, options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise PayoutError(str(exc)) from exc
        return account.to_dict()["id"]

    def onboarding_link(self, *, account_id: str, refresh_url: str, return_url: str) -> OnboardingLink:
        """An Account Link (``account_onboarding``): Stripe asks the creator for what it still needs."""
        try:
            link = self.client.v1.account_links.create(
                params={
                    "account": account_id,
                    "refresh_url": refresh_url,
                    "return_url": return_url,
                    "type": "account_onboarding",
                    "collection_options": {"fields": "currently_due"},
                }
            )
        except stripe.StripeError as exc:
            raise PayoutError(str(exc)) from exc
        data = link.to_dict()
        return OnboardingLink(
            account_id=account_id,
            url=data["url"],
            expires_at=datetime.datetime.fromtimestamp(data["expires_at"], tz=datetime.UTC),
        )
