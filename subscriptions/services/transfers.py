"""A purchase owned by another customer: the configured rule, and moving a subscription with its money.

``PURCHASE_OWNERSHIP_RULE`` (as RevenueCat's project setting): ``transfer`` (the default) moves a
purchase to the customer who presents it (``POST /purchases``, a restore on a new login) or whom a
provider event names as its account; ``keep`` leaves it with its owner (the purchase API answers
409 ``purchase_owned_by_other_customer`` naming the owner's external id). A transfer moves the
subscription, its payments with their refunds and disputes, and the provider ids that name that
purchase alone; the account ids stay with the account they name. Each transfer is audited on both
customers' timelines and publishes ``TRANSFER``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from monetization.errors import Conflict, ErrorCode
from monetization.models import AuditEvent, Customer, Dispute, Payment, ProviderIdentity, Refund
from monetization.services.audit import audit_event_build, audit_events_write
from monetization.services.customer_merge import Moved, MoveScope, amounts_by_currency, customer_survivor_id
from subscriptions.entitlements import entitlements_invalidate
from subscriptions.models import Grant, Subscription, SubscriptionPayment
from subscriptions.services.lifecycle import Cause

TRANSFER = "transfer"
KEEP = "keep"
RULES = (TRANSFER, KEEP)

# Provider ids that name one purchase (they move with it); the others name an account.
PURCHASE_IDENTITY_KINDS = (ProviderIdentity.Kind.ORIGINAL_TRANSACTION_ID, ProviderIdentity.Kind.PURCHASE_TOKEN)


def ownership_rule() -> str:
    rule = getattr(settings, "PURCHASE_OWNERSHIP_RULE", TRANSFER)
    if rule not in RULES:
        raise ImproperlyConfigured(f"PURCHASE_OWNERSHIP_RULE must be one of {RULES}, not {rule!r}.")
    return rule


def purchase_owned_elsewhere(subscription: Subscription) -> Conflict:
    """The ``keep`` rule's answer: who owns it, as the external id the client app knows its users by."""
    return Conflict(
        "This purchase belongs to another customer.",
        code=ErrorCode.PURCHASE_OWNED_BY_OTHER_CUSTOMER,
        extra={"owner": subscription.customer.external_id},
    )


def _purchase_rows(subscription: Subscription, owner_id: int) -> dict:
    payment_ids = SubscriptionPayment.objects.filter(subscription_id=subscription.pk).values("payment_id")
    payments = Payment.objects.filter(pk__in=payment_ids, customer_id=owner_id)
    return {
        "subscriptions": Subscription.objects.filter(pk=subscription.pk),
        "payments": payments,
        "refunds": Refund.objects.filter(payment_id__in=payment_ids, customer_id=owner_id),
        "disputes": Dispute.objects.filter(payment_id__in=payment_ids, customer_id=owner_id),
        "identities": ProviderIdentity.objects.filter(
            customer_id=owner_id,
            provider=subscription.provider,
            kind__in=PURCHASE_IDENTITY_KINDS,
            value=subscription.provider_subscription_id,
        ),
    }


def _count(rows: dict) -> list[Moved]:
    return [
        Moved(what, qs.count(), amounts_by_currency(qs) if what in ("payments", "refunds") else {})
        for what, qs in rows.items()
    ]


def _transfer_audits(subs: list[Subscription], source: Customer, target: Customer, cause: Cause, moved) -> list:
    """``subscription.transfer`` on both customers' timelines (each publishes TRANSFER for its customer)."""
    counts = {m.what: m.count for m in moved}
    return [
        audit_event_build(
            action="subscription.transfer",
            obj=sub,
            actor=cause.user,
            actor_kind=cause.actor_kind,
            actor_label=cause.label,
            customer=customer,
            before={"customer": source.external_id, "state": sub.state},
            after={"customer": target.external_id, "state": sub.state, "moved": counts},
            reason=cause.reason,
        )
        for sub in subs
        for customer in (source, target)
    ]


def subscription_transfer(*, subscription: Subscription, target: Customer, cause: Cause) -> list[Moved]:
    """Move one subscription (locked by the caller) and its money to ``target``; returns what moved."""
    source = subscription.customer
    rows = _purchase_rows(subscription, source.pk)
    moved = _count(rows)
    for qs in rows.values():
        qs.update(customer=target)
    audit_events_write(_transfer_audits([subscription], source, target, cause, moved))
    subscription.customer = target
    subscription.customer_id = target.pk
    entitlements_invalidate([source.external_id, target.external_id])
    return moved


def subscription_transferred_away_from(subscription_id: int, customer: Customer) -> bool:
    """A transfer already took this purchase from ``customer``: the store's memory of the old account
    (an App Store app account token, Stripe metadata) does not take it back."""
    return AuditEvent.objects.filter(
        object_type=Subscription._meta.label_lower,
        object_id=str(subscription_id),
        action="subscription.transfer",
        customer=customer,
        before__customer=customer.external_id,
    ).exists()


def named_owner(subscription: Subscription, named: Customer | None) -> Customer | None:
    """The customer a provider event names for ``subscription`` when it is not the owner and the rule
    moves it there; None otherwise (same owner, ``keep``, merged into the owner, or taken from it before)."""
    if named is None or named.pk == subscription.customer_id:
        return None
    survivor = customer_survivor_id(named.pk)
    if survivor == subscription.customer_id:
        return None
    if survivor != named.pk:
        named = Customer.objects.get(pk=survivor)
    if subscription_transferred_away_from(subscription.pk, named):
        return None
    return named


def _cause_of(scope: MoveScope) -> Cause:
    actor = scope.actor if getattr(scope.actor, "is_authenticated", False) else None
    if actor is not None:
        return Cause.staff(actor, scope.reason)
    return Cause(
        actor_kind=scope.actor_kind or AuditEvent.ActorKind.SYSTEM,
        label=scope.actor_label or getattr(scope.actor, "label", ""),
        reason=scope.reason,
    )


def subscriptions_move(scope: MoveScope, apply: bool) -> list[Moved]:
    """Subscriptions' part of a staff transfer (one subscription with its money) or merge (every
    subscription and grant; their money moves with the customer's in the core's part)."""
    source, target = scope.source, scope.target
    if not scope.is_merge:
        qs = Subscription.objects.select_related("customer").filter(pk=scope.purchase_id)
        sub = (qs.select_for_update(of=("self",)) if apply else qs).first()
        if sub is None or sub.customer_id != source.pk:
            return [
                Moved("subscriptions", 0, blocked=f"subscription {scope.purchase_id} is not {source.external_id}'s")
            ]
        if not apply:
            return _count(_purchase_rows(sub, source.pk))
        return subscription_transfer(subscription=sub, target=target, cause=_cause_of(scope))
    subs = Subscription.objects.filter(customer=source)
    grants = Grant.objects.filter(customer=source)
    moved = [Moved("subscriptions", subs.count()), Moved("grants", grants.count())]
    if apply:
        locked = list(subs.select_for_update().order_by("pk"))
        subs.update(customer=target)
        grants.update(customer=target)
        audit_events_write(_transfer_audits(locked, source, target, _cause_of(scope), moved))
        entitlements_invalidate([source.external_id, target.external_id])
    return moved
