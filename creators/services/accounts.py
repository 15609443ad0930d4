"""Creator accounts: applying, onboarding, and Compliance's suspend / ban / reinstate."""

from __future__ import annotations

from django.db import transaction
from django_fsm import can_proceed

from monetization import clock
from monetization.errors import IllegalTransition, InvalidInput, NotFound
from monetization.models import Customer
from monetization.reasons import reason_check
from monetization.services.audit import audit_record, snapshot
from monetization.services.permissions import System, require_perm

from ..models import CreatorAccount, CreatorStats, PayoutProfile

SNAPSHOT = ["state", "state_reason"]

# Transition name -> the permission a staff actor needs (None: system/creator-driven).
STAFF_TRANSITIONS = {
    "suspend": "creators.suspend_creator",
    "reinstate": "creators.suspend_creator",
    "ban": "creators.suspend_creator",
    "mark_eligible": "creators.review_eligibility",
    "mark_ineligible": "creators.review_eligibility",
    "start_onboarding": None,
    "activate": None,
}
REASON_REQUIRED = {"suspend", "reinstate", "ban", "mark_eligible", "mark_ineligible"}


def creator_apply(*, customer: Customer, verified_followers: int = 0, account_created_at=None) -> CreatorAccount:
    """Open a creator account for a customer (idempotent: an existing account is returned)."""
    with transaction.atomic():
        creator, created = CreatorAccount.objects.get_or_create(customer=customer)
        if created:
            CreatorStats.objects.create(
                creator=creator,
                verified_followers=verified_followers,
                account_created_at=account_created_at or customer.created_at,
            )
            PayoutProfile.objects.create(creator=creator)
            audit_record(action="creator.apply", obj=creator, customer=customer, after=snapshot(creator, SNAPSHOT))
        return creator


def creator_transition(
    *, creator_id: int, transition: str, actor=None, reason: str = "", actor_label: str = ""
) -> CreatorAccount:
    """Move a creator account through its lifecycle (locked, checked, audited)."""
    if transition not in STAFF_TRANSITIONS:
        raise InvalidInput(f"Unknown transition {transition!r}.")
    perm = STAFF_TRANSITIONS[transition]
    if perm:
        require_perm(actor, perm)
    reason_check(reason, required=not isinstance(actor, System) and transition in REASON_REQUIRED)
    with transaction.atomic():
        creator = CreatorAccount.objects.select_for_update().filter(pk=creator_id).first()
        if creator is None:
            raise NotFound("No such creator.")
        method = getattr(creator, transition)
        if not can_proceed(method):
            raise IllegalTransition(f"Cannot {transition} a creator in state {creator.state}.")
        before = snapshot(creator, SNAPSHOT)
        method()
        creator.state_reason = reason
        creator.state_changed_at = clock.now()
        creator.save()
        audit_record(
            action=f"creator.{transition}",
            obj=creator,
            actor=actor,
            actor_label=actor_label,
            customer=creator.customer,
            before=before,
            after=snapshot(creator, SNAPSHOT),
            reason=reason,
        )
        return creator


def payout_profile_update(
    *,
    creator_id: int,
    payout_account_id: str | None = None,
    tax_form_status: str | None = None,
    tax_form_type: str | None = None,
    actor=None,
) -> PayoutProfile:
    """Record the Stripe Connect account and tax form; completes onboarding when both are there."""
    fields = ["payout_account_id", "tax_form_status", "tax_form_type", "verified_at"]
    with transaction.atomic():
        profile = PayoutProfile.objects.select_for_update().filter(creator_id=creator_id).first()
        if profile is None:
            raise NotFound("No such creator.")
        before = snapshot(profile, fields)
        if payout_account_id is not None:
            if payout_account_id and not payout_account_id.startswith("acct_"):
                raise InvalidInput("A Stripe Connect account id starts with acct_.")
            profile.payout_account_id = payout_account_id
        if tax_form_status is not None:
            if tax_form_status not in PayoutProfile.TaxFormStatus.values:
                raise InvalidInput(f"Unknown tax form status {tax_form_status!r}.")
            profile.tax_form_status = tax_form_status
            if tax_form_status == PayoutProfile.TaxFormStatus.VERIFIED:
                profile.verified_at = clock.now()
        if tax_form_type is not None:
            if tax_form_type not in PayoutProfile.TaxFormType.values:
                raise InvalidInput(f"Unknown tax form type {tax_form_type!r}.")
            profile.tax_form_type = tax_form_type
        profile.save()
        audit_record(
            action="creator.payout_profile_update",
            obj=profile,
            actor=actor,
            before=before,
            after=snapshot(profile, fields),
        )
        creator = CreatorAccount.objects.select_for_update().get(pk=creator_id)
        if creator.state == CreatorAccount.State.ONBOARDING and profile.is_complete:
            creator_transition(creator_id=creator_id, transition="activate", actor=System("onboarding complete"))
        return profile
