"""Stripe Billing for verified organizations: what the adapter calls to bill an organization.

A customer per organization; a subscription with two items: the seats (the SKU's per-seat
price, quantity = our seat count, always first so a subscription snapshot reads the seat
count) and the base price as a flat item. Prorations are computed by us and sent as invoice
items (quantity changes say ``proration_behavior: none``), so what Stripe invoices is our
seat-time computation to the minor unit. Stripe finalizes and collects the invoices; what it
collected reaches us as ``invoice.paid``.
"""

from __future__ import annotations

from decimal import Decimal

from djmoney.money import Money

from monetization.money import minor_from_money


class StripeBillingMixin:
    """Organization billing calls of :class:`~.adapter.StripeProvider` (``_call`` and ``client`` are its)."""

    def billing_customer_create(self, *, name: str, email: str, metadata: dict, idempotency_key: str) -> str:
        params = {"name": name[:200], "metadata": metadata}
        if email:
            params["email"] = email
        obj = self._call(self.client.v1.customers.create, params=params, options={"idempotency_key": idempotency_key})
        return obj.to_dict()["id"]

    def billing_subscription_create(
        self,
        *,
        customer: str,
        seat_price_id: str,
        seat_amount: Money,
        base_amount: Money,
        base_product: str,
        quantity: int,
        metadata: dict,
        idempotency_key: str,
        tax_percent: Decimal | None = None,
    ) -> dict:
        """Create the subscription (charged automatically): its id, current period and first invoice id.

        ``seat_amount`` is what our catalog says the seat price charges; it goes into the metadata,
        so a Stripe price that disagrees shows on the subscription (and as an invoice mismatch).
        ``tax_percent``: an exclusive tax rate applied to every line of its invoices.
        """
        extra: dict = {}
        if tax_percent is not None:
            rate = self._call(
                self.client.v1.tax_rates.create,
                params={"display_name": "VAT", "percentage": str(tax_percent), "inclusive": False},
                options={"idempotency_key": f"{idempotency_key}:tax_rate"},
            )
            extra["default_tax_rates"] = [rate.to_dict()["id"]]
        obj = self._call(
            self.client.v1.subscriptions.create,
            params={
                **extra,
                "customer": customer,
                "collection_method": "charge_automatically",
                "items": [
                    {"price": seat_price_id, "quantity": quantity},
                    {
                        "price_data": {
                            "currency": str(base_amount.currency).lower(),
                            "product": base_product,
                            "unit_amount": minor_from_money(base_amount),
                            "recurring": {"interval": "month"},
                        },
                        "quantity": 1,
                    },
                ],
                "metadata": {**metadata, "seat_amount": str(seat_amount)},
            },
            options={"idempotency_key": idempotency_key},
        )
        return billing_subscription_summary(obj.to_dict())

    def billing_quantity_set(self, *, subscription: str, quantity: int, idempotency_key: str) -> None:
        """Push our seat count; Stripe prorates nothing (our invoice items carry the proration)."""
        sub = self._call(self.client.v1.subscriptions.retrieve, subscription).to_dict()
        seat_item = sub["items"]["data"][0]["id"]
        self._call(
            self.client.v1.subscription_items.update,
            seat_item,
            params={"quantity": quantity, "proration_behavior": "none"},
            options={"idempotency_key": idempotency_key},
        )

    def billing_invoice_item_create(
        self, *, customer: str, subscription: str, amount: Money, description: str, idempotency_key: str
    ) -> str:
        """A pending invoice item (a charge, or a credit when negative) on the subscription's next invoice."""
        obj = self._call(
            self.client.v1.invoice_items.create,
            params={
                "customer": customer,
                "subscription": subscription,
                "amount": minor_from_money(amount),
                "currency": str(amount.currency).lower(),
                "description": description[:500],
            },
            options={"idempotency_key": idempotency_key},
        )
        return obj.to_dict()["id"]

    def billing_invoice_close(self, *, invoice: str, uncollectible: bool, idempotency_key: str) -> None:
        """Void an open invoice, or mark it uncollectible (Stripe stops collecting either way)."""
        fn = self.client.v1.invoices.mark_uncollectible if uncollectible else self.client.v1.invoices.void_invoice
        self._call(fn, invoice, options={"idempotency_key": idempotency_key})


def billing_subscription_summary(sub: dict) -> dict:
    item = sub["items"]["data"][0]
    latest = sub.get("latest_invoice")
    return {
        "id": sub["id"],
        "current_period_start": item.get("current_period_start", sub.get("current_period_start")),
        "current_period_end": item.get("current_period_end", sub.get("current_period_end")),
        "latest_invoice": latest.get("id") if isinstance(latest, dict) else (latest or ""),
    }
