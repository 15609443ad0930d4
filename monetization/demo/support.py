"""Demo: the support console's day of refunds (succeeded, awaiting approval, rejected, failed).

Runs after the other demo steps and works on what they created: the staff
logins (support, finance, compliance from monetization.demo.customers) and the
demo customers' payments. Skips quietly when they are not there. Idempotent:
everything it makes is tagged "[demo]"; a re-run finds the tag and stops.
subscriptions.demo.support adds the day's grants and subscription actions.

The demo has no provider accounts, so the provider calls made while seeding
go to the in-memory test double (:func:`with_fake_providers`); the running
server keeps the configured adapters (``PAYMENT_PROVIDER_*``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.test.utils import override_settings
from djmoney.money import Money

from monetization.errors import DomainError
from monetization.models import Payment, Provider, Refund
from monetization.providers.base import ProviderError, get_provider, reset_providers
from monetization.services.ledger import quantize
from monetization.services.refunds import refund_approve, refund_reject, refund_request

TAG = "[demo]"
FAKE = "monetization.demo.providers.FakeProvider"


def staff():
    """The demo's staff logins (support, finance, compliance, admin), or None for those not seeded."""
    User = get_user_model()
    users = {u.username: u for u in User.objects.filter(username__in=["support", "finance", "compliance", "admin"])}
    return users.get("support"), users.get("finance"), users.get("compliance"), users.get("admin")


def _refundable(limit: int) -> list[Payment]:
    """One succeeded payment per customer (a customer's 4th refund in 30 days waits for approval),
    in currencies with an auto-approval threshold first, Stripe and Google Play taking turns."""
    chosen: dict[int, Payment] = {}
    by_provider: dict[str, list[Payment]] = {Provider.STRIPE: [], Provider.GOOGLE_PLAY: []}
    currencies = list(settings.REFUND_APPROVAL_THRESHOLDS)
    rows = (
        Payment.objects.filter(status=Payment.Status.SUCCEEDED, provider__in=list(by_provider))
        .select_related("customer")
        .order_by("id")
    )
    for payment in rows.iterator(chunk_size=500):
        if payment.customer_id in chosen or len(by_provider[payment.provider]) >= limit:
            continue
        chosen[payment.customer_id] = payment
        by_provider[payment.provider].append(payment)
        if all(len(v) >= limit for v in by_provider.values()):
            break
    for payments in by_provider.values():
        payments.sort(key=lambda p: (str(p.amount.currency) not in currencies, p.pk))
    mixed = [p for pair in zip(*by_provider.values(), strict=False) for p in pair]
    rest = [p for payments in by_provider.values() for p in payments[len(mixed) // 2 :]]
    return (mixed + rest)[:limit]


def attempt(fn, out, label):
    try:
        return fn()
    except (DomainError, ProviderError) as exc:
        out.write(f"  skipped {label}: {exc}")
        return None


def with_fake_providers(seed_step: Callable[[], None]) -> None:
    """Run a seeding step with every payment provider pointed at the in-memory test double."""
    fakes = dict.fromkeys(settings.PAYMENT_PROVIDERS, FAKE)
    reset_providers()
    try:
        with override_settings(PAYMENT_PROVIDERS=fakes):
            seed_step()
    finally:
        reset_providers()


def seed(*, rng, out, options) -> None:
    with_fake_providers(lambda: _seed(out=out))


def _seed(*, out) -> None:
    if Refund.objects.filter(note__startswith=TAG).exists():
        out.write("  support demo already seeded")
        return
    support, finance, _compliance, _admin = staff()
    if support is None or finance is None:
        out.write("  no demo staff logins (monetization.demo.customers); skipping the support demo")
        return
    payments = _refundable(40)
    if not payments:
        out.write("  no demo payments yet; skipping refunds")
    reasons = ["requested_by_customer", "service_outage", "goodwill", "duplicate"]
    for i, payment in enumerate(payments[:8]):
        currency = str(payment.amount.currency)
        full = i % 3 == 0
        amount = payment.amount if full else Money(quantize(payment.amount.amount / 2, currency), currency)
        attempt(
            lambda p=payment, a=amount, i=i, full=full: refund_request(
                payment=p,
                amount=a,
                reason_code=reasons[i % len(reasons)],
                note=f"{TAG} customer wrote in (ticket #{4100 + i})",
                revoke_access=Refund.RevokeAccess.AT_PERIOD_END if full else Refund.RevokeAccess.NONE,
                requested_by=support,
            ),
            out,
            f"refund of payment {payment.pk}",
        )
    # Requests above the four-eyes threshold (a zero threshold stands in for big-ticket payments here).
    held = []
    with override_settings(REFUND_APPROVAL_THRESHOLDS={}):
        for i, payment in enumerate(payments[8:14]):
            refund = attempt(
                lambda p=payment, i=i: refund_request(
                    payment=p,
                    amount=p.amount,
                    reason_code="fraudulent" if i % 2 else "requested_by_customer",
                    note=f"{TAG} large refund, needs Finance",
                    revoke_access=Refund.RevokeAccess.NOW,
                    requested_by=support,
                ),
                out,
                f"held refund of payment {payment.pk}",
            )
            if refund is not None:
                held.append(refund)
    if len(held) >= 2:
        attempt(lambda: refund_approve(refund=held[0], approved_by=finance, reason=f"{TAG} verified"), out, "approve")
        attempt(
            lambda: refund_reject(refund=held[1], rejected_by=finance, reason=f"{TAG} outside policy"), out, "reject"
        )
    # Provider failures, left for staff to retry.
    for payment in payments[14:16]:
        provider = get_provider(payment.provider)
        if hasattr(provider, "fail_next"):
            provider.fail_next["refund"] = ProviderError("The provider timed out", code="api_connection_error")
            attempt(
                lambda p=payment: refund_request(
                    payment=p,
                    amount=p.amount,
                    reason_code="goodwill",
                    note=f"{TAG} provider timed out",
                    requested_by=support,
                ),
                out,
                "failing refund",
            )
    statuses = dict(
        Refund.objects.filter(note__startswith=TAG)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    out.write(f"  refunds by status: {statuses}")
