"""Stripe Connect events about creators' accounts and transfers.

- ``account.updated``: the account's payout status (``payouts_enabled``, requirements currently or
  past due) is stored on the payout profile; an account that cannot be paid puts a
  ``connect_account`` hold on the creator's unpaid payouts, and the holds are lifted once Stripe
  reports the account payable again.
- ``transfer.reversed`` (the whole transfer): the payout is owed again. The ledger gets the reverse
  of its payment (key ``payout:<id>[:<n>]:reversed``), the payout goes back to ``held`` with a
  ``transfer_reversed`` hold and, once Compliance lifts it, is re-sent under a new idempotency key.
  A partial reversal holds the creator's unpaid payouts for Finance to look at, re-owing nothing.
- ``payout.failed`` (the connected account's payout to its bank): the money is still on the
  creator's Stripe balance, which Stripe pays out again once the bank details are fixed; re-owing it
  would pay twice. The creator's unpaid payouts are held (``bank_payout_failed``) and the profile
  marked not payable until ``account.updated`` says otherwise.

Each returns a short note (what it did) for the event's record; each is idempotent.

Onboarding (``creator_connect_onboarding_link``): the creator's Express account is created once and its id
kept on the payout profile; each request gets a fresh single-use Account Link to Stripe's hosted
onboarding. What Stripe then learns reaches us as ``account.updated`` (above).
"""

from __future__ import annotations

from django.db import transaction
from djmoney.money import Money

from monetization import clock
from monetization.errors import Conflict, ErrorCode, InvalidInput, NotFound
from monetization.models import Customer
from monetization.providers.base import PayoutError, PayoutProvider, get_payout_provider
from monetization.services.audit import audit_record, snapshot
from monetization.services.ledger import Account, Leg, Posting, journal_post
from monetization.services.permissions import System

from ..models import Payout, PayoutHold, PayoutProfile
from .payouts import CASH_ACCOUNT, PAYOUT_FIELDS

CAUSE = System("stripe connect event")
UNPAID = (Payout.Status.SCHEDULED, Payout.Status.APPROVED, Payout.Status.PROCESSING, Payout.Status.FAILED)


def _hold_unpaid(creator_id: int, kind: str, reason: str) -> int:
    """Hold every unpaid payout of the creator (held ones get the extra hold too). Caller is in a transaction."""
    held = 0
    for payout in Payout.objects.select_for_update().filter(
        creator_id=creator_id, status__in=[*UNPAID, Payout.Status.HELD]
    ):
        if PayoutHold.objects.filter(payout=payout, kind=kind, lifted_at__isnull=True).exists():
            continue
        before = snapshot(payout, PAYOUT_FIELDS)
        if payout.status != Payout.Status.HELD:
            payout.hold()
            payout.save()
        PayoutHold.objects.create(payout=payout, kind=kind, reason=reason)
        audit_record(action="payout.hold", obj=payout, actor=CAUSE, before=before, after={"hold": kind}, reason=reason)
        held += 1
    return held


def _lift(creator_id: int, kind: str, reason: str) -> int:
    lifted = 0
    now = clock.now()
    for hold in PayoutHold.objects.select_for_update().filter(
        payout__creator_id=creator_id, kind=kind, lifted_at__isnull=True
    ):
        hold.lifted_at, hold.lift_reason = now, reason
        hold.save(update_fields=["lifted_at", "lift_reason"])
        payout = Payout.objects.select_for_update().get(pk=hold.payout_id)
        if payout.status == Payout.Status.HELD and not payout.holds.filter(lifted_at__isnull=True).exists():
            payout.approve()
            payout.save()
        audit_record(action="payout.hold_lift", obj=payout, actor=CAUSE, after={"hold": kind}, reason=reason)
        lifted += 1
    return lifted


def connect_account_updated(account: dict) -> str:
    with transaction.atomic():
        profile = PayoutProfile.objects.select_for_update().filter(payout_account_id=account["id"]).first()
        if profile is None:
            return f"no creator has account {account['id']}"
        requirements = account.get("requirements") or {}
        due = sorted(set(requirements.get("currently_due") or []) | set(requirements.get("past_due") or []))
        payable = bool(account.get("payouts_enabled")) and not due
        profile.payouts_enabled = bool(account.get("payouts_enabled"))
        profile.requirements_due = due
        profile.connect_synced_at = clock.now()
        profile.save(update_fields=["payouts_enabled", "requirements_due", "connect_synced_at"])
        if payable:
            lifted = _lift(profile.creator_id, PayoutHold.Kind.CONNECT_ACCOUNT, "Stripe: the account can be paid")
            lifted += _lift(profile.creator_id, PayoutHold.Kind.BANK_PAYOUT_FAILED, "Stripe: the account can be paid")
            return f"account payable; {lifted} hold(s) lifted"
        why = "payouts disabled" if not account.get("payouts_enabled") else "requirements due: " + ", ".join(due)
        held = _hold_unpaid(profile.creator_id, PayoutHold.Kind.CONNECT_ACCOUNT, f"Stripe: {why}")
        return f"account not payable ({why}); {held} payout(s) held"


def connect_transfer_reversed(transfer: dict) -> str:
    with transaction.atomic():
        payout = Payout.objects.select_for_update().select_related("creator").filter(transfer_id=transfer["id"]).first()
        if payout is None:
            return f"no payout was sent as {transfer['id']}"
        if payout.status != Payout.Status.PAID:
            return f"payout {payout.pk} is {payout.status}: nothing to re-owe"
        reversed_minor = int(transfer.get("amount_reversed") or 0)
        if reversed_minor < int(transfer["amount"]):
            held = _hold_unpaid(
                payout.creator_id,
                PayoutHold.Kind.TRANSFER_REVERSED,
                f"Stripe reversed {reversed_minor} of {transfer['amount']} (minor units) of {transfer['id']}",
            )
            return f"partial reversal of payout {payout.pk}: {held} payout(s) held for Finance"
        before = snapshot(payout, PAYOUT_FIELDS)
        paid_key = payout.paid_entry_key
        payout.reverse(f"transfer {transfer['id']} reversed")
        payout.save()
        journal_post(
            Posting(
                key=paid_key.removesuffix(":paid") + ":reversed",
                kind="creator_payout_reversal",
                legs=[
                    Leg(CASH_ACCOUNT, Money(payout.amount, payout.currency)),
                    Leg(Account.CREATOR_PAYABLE, Money(-payout.amount, payout.currency)),
                ],
                memo=f"Transfer {transfer['id']} of payout {payout.pk} reversed",
                customer=Customer(pk=payout.creator.customer_id),
                source_type="creators.payout",
                source_id=str(payout.pk),
            )
        )
        PayoutHold.objects.create(
            payout=payout, kind=PayoutHold.Kind.TRANSFER_REVERSED, reason=f"Stripe reversed {transfer['id']}"
        )
        audit_record(
            action="payout.reversed",
            obj=payout,
            actor=CAUSE,
            customer=Customer(pk=payout.creator.customer_id),
            before=before,
            after=snapshot(payout, PAYOUT_FIELDS),
            reason=f"transfer.reversed {transfer['id']}",
        )
        return f"payout {payout.pk} owed again and held"


def connect_payout_failed(bank_payout: dict, *, account_id: str) -> str:
    with transaction.atomic():
        profile = PayoutProfile.objects.select_for_update().filter(payout_account_id=account_id).first()
        if profile is None:
            return f"no creator has account {account_id}"
        profile.payouts_enabled = False
        profile.connect_synced_at = clock.now()
        profile.save(update_fields=["payouts_enabled", "connect_synced_at"])
        reason = f"Stripe: bank payout {bank_payout['id']} failed ({bank_payout.get('failure_code') or 'unknown'})"
        held = _hold_unpaid(profile.creator_id, PayoutHold.Kind.BANK_PAYOUT_FAILED, reason)
        return f"bank payout failed; {held} payout(s) held"


def connect_event_apply(event: dict) -> str:
    """Apply one verified Stripe Connect event (``account.updated``, ``transfer.reversed``, ``payout.failed``)."""
    obj = event["data"]["object"]
    kind = event["type"]
    if kind == "account.updated":
        return connect_account_updated(obj)
    if kind == "transfer.reversed":
        return connect_transfer_reversed(obj)
    if kind == "payout.failed":
        return connect_payout_failed(obj, account_id=event.get("account") or "")
    return f"{kind}: nothing to do"


def connect_stored_event_apply(event) -> str:
    """Apply a stored (verified) Connect event from the webhook inbox."""
    return connect_event_apply(event.payload)


def creator_connect_onboarding_link(
    *, creator_id: int, refresh_url: str, return_url: str, provider: PayoutProvider | None = None
) -> dict:
    """Stripe's hosted onboarding for the creator: their Express account (made once) and a fresh Account Link.

    The provider is called with no transaction or row lock open: the account is created under the creator's
    own idempotency key (a retry gets the same account back) and recorded afterwards, only if none was.
    """
    for url in (refresh_url, return_url):
        if not url.startswith("https://"):
            raise InvalidInput("Onboarding return and refresh URLs must be https.")
    provider = provider or get_payout_provider()
    if not hasattr(provider, "onboarding_link"):
        raise Conflict(
            "The payout provider has no hosted onboarding.", code=ErrorCode.UNSUPPORTED_BY_PROVIDER, status=409
        )
    profile = PayoutProfile.objects.select_related("creator__customer").filter(creator_id=creator_id).first()
    if profile is None:
        raise NotFound("This creator has no payout profile.")
    account_id, created = profile.payout_account_id, False
    try:
        if not account_id:
            customer = profile.creator.customer
            account_id = provider.account_create(
                email=customer.email, country=customer.country, idempotency_key=f"creator:{creator_id}:connect_account"
            )
            created = True
        link = provider.onboarding_link(account_id=account_id, refresh_url=refresh_url, return_url=return_url)
    except PayoutError as exc:
        raise Conflict(str(exc), code=ErrorCode.PROVIDER_ERROR, status=502) from exc
    with transaction.atomic():
        profile = PayoutProfile.objects.select_for_update().get(pk=profile.pk)
        if created and not profile.payout_account_id:
            profile.payout_account_id = account_id
            profile.save(update_fields=["payout_account_id"])
        audit_record(
            action="creator.connect_onboarding_link",
            obj=profile,
            actor=System("creator onboarding"),
            customer=Customer(pk=profile.creator.customer_id),
            after={"account": profile.payout_account_id, "account_created": created},
        )
    return {"account": profile.payout_account_id, "url": link.url, "expires_at": link.expires_at.isoformat()}
