"""Stripe's payloads as the pinned API version renders them: events, subscriptions, invoices, charges.

Written once, here, for whoever needs to make one: the demo's webhook inbox and the
webhook tests build their events with these functions, and the tests check them
against payloads recorded from Stripe (tests/fixtures/stripe), so what the demo shows
and what the tests post is what :mod:`.parsing` reads in production.
"""

from __future__ import annotations

from django.conf import settings


def event(
    *,
    event_id: str,
    event_type: str,
    created: int,
    obj: dict,
    previous: dict | None = None,
    livemode: bool = True,
    request_id: str | None = None,
    idempotency_key: str | None = None,
) -> dict:
    data: dict = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": event_id,
        "object": "event",
        "api_version": settings.STRIPE_API_VERSION,
        "created": created,
        "data": data,
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": event_type,
    }


def subscription(
    *,
    sub_id: str,
    customer: str,
    status: str,
    created: int,
    period_start: int,
    period_end: int,
    price_id: str,
    product: str,
    unit_amount: int,
    currency: str = "usd",
    interval: str = "month",
    item_id: str,
    item_created: int | None = None,
    quantity: int = 1,
    external_id: str = "",
    latest_invoice: str | None = None,
    default_payment_method: str | None = None,
    billing_cycle_anchor: int | None = None,
    trial_start: int | None = None,
    trial_end: int | None = None,
    cancel_at: int | None = None,
    cancel_at_period_end: bool = False,
    canceled_at: int | None = None,
    cancellation_details: dict | None = None,
    ended_at: int | None = None,
    pause_collection: dict | None = None,
    livemode: bool = True,
) -> dict:
    """A Subscription: since 2025-03-31 the current period lives on its item."""
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "billing_cycle_anchor": billing_cycle_anchor if billing_cycle_anchor is not None else created,
        "cancel_at": cancel_at,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": canceled_at,
        "cancellation_details": cancellation_details or {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "customer": customer,
        "default_payment_method": default_payment_method,
        "ended_at": ended_at,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": item_id,
                    "object": "subscription_item",
                    "created": item_created if item_created is not None else created,
                    "current_period_end": period_end,
                    "current_period_start": period_start,
                    "metadata": {},
                    "price": {
                        "id": price_id,
                        "object": "price",
                        "active": True,
                        "currency": currency,
                        "product": product,
                        "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"},
                        "type": "recurring",
                        "unit_amount": unit_amount,
                    },
                    "quantity": quantity,
                    "subscription": sub_id,
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": latest_invoice,
        "livemode": livemode,
        "metadata": {"external_id": external_id} if external_id else {},
        "pause_collection": pause_collection,
        "start_date": created,
        "status": status,
        "trial_end": trial_end,
        "trial_start": trial_start,
    }


def invoice(
    *,
    invoice_id: str,
    customer: str,
    sub_id: str,
    total: int,
    created: int,
    period_start: int,
    period_end: int,
    price_id: str,
    product: str,
    line_id: str,
    number: str,
    currency: str = "usd",
    paid: bool = True,
    tax: int = 0,
    tax_rate: str = "",
    billing_reason: str = "subscription_cycle",
    external_id: str = "",
    customer_email: str = "",
    finalized_at: int | None = None,
    paid_at: int | None = None,
    next_payment_attempt: int | None = None,
    charge: dict | None = None,
    livemode: bool = True,
) -> dict:
    """An Invoice of a subscription (its subscription under ``parent``, as the pinned version puts it).

    ``charge``: the charge expanded with its balance transaction (see :func:`expanded_charge`), for the fee.
    """
    obj = {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "amount_due": total,
        "amount_paid": total if paid else 0,
        "amount_remaining": 0 if paid else total,
        "attempt_count": 1 if total else 0,
        "attempted": bool(total),
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "customer": customer,
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": line_id,
                    "object": "line_item",
                    "amount": total,
                    "currency": currency,
                    "period": {"end": period_end, "start": period_start},
                    "pricing": {
                        "price_details": {"price": price_id, "product": product},
                        "type": "price_details",
                        "unit_amount_decimal": str(total),
                    },
                    "quantity": 1,
                }
            ],
            "has_more": False,
            "total_count": 1,
        },
        "livemode": livemode,
        "next_payment_attempt": next_payment_attempt,
        "number": number,
        "paid": paid,
        "parent": {
            "quote_details": None,
            "subscription_details": {
                "metadata": {"external_id": external_id} if external_id else {},
                "subscription": sub_id,
            },
            "type": "subscription_details",
        },
        "period_end": created,
        "period_start": created,
        "status": "paid" if paid else "open",
        "status_transitions": {
            "finalized_at": finalized_at if finalized_at is not None else created,
            "paid_at": (paid_at if paid_at is not None else created) if paid else None,
            "voided_at": None,
        },
        "subtotal": total,
        "total": total,
        "total_taxes": [
            {
                "amount": tax,
                "tax_behavior": "inclusive",
                "tax_rate_details": {"tax_rate": tax_rate},
                "taxability_reason": "standard_rated",
                "taxable_amount": total - tax,
                "type": "tax_rate_details",
            }
        ]
        if tax
        else [],
    }
    if customer_email:
        obj["customer_email"] = customer_email
    if charge is not None:
        obj["charge"] = charge
    return obj


def expanded_charge(*, charge_id: str, balance_transaction_id: str, amount: int, fee: int) -> dict:
    """An invoice's charge as it comes expanded, with its balance transaction (the processing fee)."""
    return {
        "id": charge_id,
        "object": "charge",
        "balance_transaction": {
            "id": balance_transaction_id,
            "object": "balance_transaction",
            "fee": fee,
            "net": amount - fee,
        },
    }


def refunded_charge(
    *,
    charge_id: str,
    customer: str,
    amount: int,
    refunded: int,
    created: int,
    payment_intent: str,
    payment_method: str,
    balance_transaction: str,
    currency: str = "usd",
    livemode: bool = True,
) -> dict:
    """A Charge refunded (in part or in full) as ``charge.refunded`` carries it (recent versions name no invoice)."""
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "balance_transaction": balance_transaction,
        "captured": True,
        "created": created,
        "currency": currency,
        "customer": customer,
        "livemode": livemode,
        "paid": True,
        "payment_intent": payment_intent,
        "payment_method": payment_method,
        "refunded": refunded >= amount,
        "status": "succeeded",
    }


def dispute_balance_transaction(*, txn_id: str, amount: int, fee: int, created: int, currency: str = "usd") -> dict:
    """A dispute's balance transaction: the withdrawal (negative, with the dispute fee) or the reinstatement."""
    return {
        "id": txn_id,
        "object": "balance_transaction",
        "amount": amount,
        "created": created,
        "currency": currency,
        "description": "Chargeback withdrawal" if amount < 0 else "Chargeback reversal",
        "fee": fee,
        "fee_details": [{"amount": fee, "currency": currency, "description": "Dispute fee", "type": "stripe_fee"}]
        if fee
        else [],
        "net": amount - fee,
        "reporting_category": "dispute" if amount < 0 else "dispute_reversal",
        "status": "available",
        "type": "adjustment",
    }


def dispute(
    *,
    dispute_id: str,
    charge_id: str,
    payment_intent: str,
    amount: int,
    status: str,
    created: int,
    due_by: int | None,
    balance_transactions: list[dict] | None = None,
    reason: str = "fraudulent",
    currency: str = "usd",
    livemode: bool = True,
) -> dict:
    """A Dispute as ``charge.dispute.*`` events carry it (its balance transactions expanded, as Stripe sends them)."""
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": balance_transactions or [],
        "charge": charge_id,
        "created": created,
        "currency": currency,
        "evidence_details": {
            "due_by": due_by,
            "has_evidence": status in ("under_review", "won", "lost"),
            "past_due": False,
            "submission_count": 1 if status in ("under_review", "won", "lost") else 0,
        },
        "is_charge_refundable": False,
        "livemode": livemode,
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": reason,
        "status": status,
    }
