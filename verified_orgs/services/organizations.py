"""The verification lifecycle: apply, review, verify, reject, re-apply, suspend, reinstate, cancel.

Staff transitions check the transition's Django permission (only Compliance
holds them); system callers (the organization following its subscription, see
dunning) pass a :class:`~monetization.services.permissions.System` cause. Every change is audited and
invalidates the cached
entitlements of everyone whose badge it touches.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django_fsm import TransitionNotAllowed, can_proceed

from monetization import clock
from monetization.errors import Conflict, IllegalTransition, InvalidInput, NotFound, OrgErrorCode
from monetization.models import AuditEvent, Customer
from monetization.reasons import reason_check
from monetization.services.audit import audit_event_build, audit_events_write, audit_record, snapshot
from monetization.services.permissions import System, require_perm
from subscriptions.entitlements import entitlements_invalidate
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause, subscription_change_state
from verified_orgs.models import (
    REINSTATE_PERM,
    REJECT_PERM,
    SUSPEND_PERM,
    VERIFY_PERM,
    Affiliation,
    Organization,
    OrganizationAdmin,
    VerificationApplication,
)
from verified_orgs.selectors import badge_holder_external_ids
from verified_orgs.services.billing import org_billing_start
from verified_orgs.services.locks import organization_lock

SNAPSHOT_FIELDS = ["state", "state_reason", "suspension_cause", "seat_limit", "verified_at"]
# The permission each staff transition needs (as declared on the model's transitions).
TRANSITION_PERMS = {
    "start_review": VERIFY_PERM,
    "verify": VERIFY_PERM,
    "reject": REJECT_PERM,
    "suspend": SUSPEND_PERM,
    "reinstate": REINSTATE_PERM,
    "cancel": SUSPEND_PERM,
}
REASON_REQUIRED_FOR = {"reject", "suspend", "reinstate", "cancel"}
# How a refusal names the transition ("Rejecting an organization needs a reason.").
_DOING = {"reject": "Rejecting", "suspend": "Suspending", "reinstate": "Reinstating", "cancel": "Cancelling"}
CHANGE_PERM = "verified_orgs.change_organization"
NOTES_PERM = "verified_orgs.change_verificationapplication"
# What staff may correct on an organization; the handle, billing customer and state have their own ways.
EDITABLE_FIELDS = ("name", "website", "country", "vat_id")


def _cause(actor, actor_label: str, reason: str, *, authorized_by: str = "") -> Cause:
    if isinstance(actor, System):
        return Cause(actor_kind=AuditEvent.ActorKind.SYSTEM, label=actor.label, reason=reason)
    if actor is not None:
        # The organization transition's own permission covers what it does to the org's subscription.
        return (
            Cause.staff_consequence(actor, reason, authorized_by=authorized_by)
            if authorized_by
            else Cause.staff(actor, reason)
        )
    return Cause(actor_kind=AuditEvent.ActorKind.SYSTEM, label=actor_label or "system", reason=reason)


def organization_apply(
    *,
    name: str,
    handle: str,
    billing_customer: Customer,
    admins: Iterable[Customer] = (),
    website: str = "",
    country: str = "US",
    vat_id: str = "",
    documents: list[dict] | None = None,
    notes: str = "",
    actor_label: str = "",
) -> Organization:
    """A new organization applies for verification; it joins the review queue."""
    handle = (handle or "").strip().lstrip("@")
    if not name or not handle:
        raise InvalidInput("An organization needs a name and a handle.")
    with transaction.atomic():
        try:
            with transaction.atomic():
                org = Organization.objects.create(
                    name=name,
                    handle=handle,
                    website=website,
                    country=(country or "US").upper(),
                    vat_id=(vat_id or "").strip().upper(),
                    billing_customer=billing_customer,
                    submitted_at=clock.now(),
                )
        except IntegrityError:
            raise Conflict(f"The handle @{handle} is taken.", code=OrgErrorCode.HANDLE_TAKEN) from None
        admin_rows = {c.pk: c for c in [billing_customer, *admins]}
        OrganizationAdmin.objects.bulk_create(
            [OrganizationAdmin(organization=org, customer=c) for c in admin_rows.values()]
        )
        VerificationApplication.objects.create(
            organization=org, submitted_at=org.submitted_at, documents=documents or [], applicant_notes=notes
        )
        audit_record(
            action="organization.apply",
            obj=org,
            actor_kind=AuditEvent.ActorKind.CLIENT,
            actor_label=actor_label or f"customer:{billing_customer.external_id}",
            customer=billing_customer,
            after=snapshot(org, SNAPSHOT_FIELDS),
        )
    return org


def _transition(
    *,
    organization: Organization,
    name: str,
    actor=None,
    actor_label: str = "",
    reason: str = "",
    kwargs: dict | None = None,
) -> tuple[Organization, dict]:
    """Lock, check permission and source state, transition, save, audit. Returns (org, before)."""
    reason = reason_check(
        reason, required=name in REASON_REQUIRED_FOR, what=f"{_DOING.get(name, name.capitalize())} an organization"
    ).strip()
    org = organization_lock(organization.pk)
    method = getattr(org, name)
    perm = TRANSITION_PERMS.get(name)
    if perm:
        require_perm(actor, perm)
    if not can_proceed(method):
        raise IllegalTransition(f"Cannot {name.replace('_', ' ')} an organization that is {org.state}.")
    before = snapshot(org, SNAPSHOT_FIELDS)
    try:
        method(reason=reason, **(kwargs or {}))
    except TransitionNotAllowed as exc:
        raise IllegalTransition(str(exc)) from exc
    org.updated_at = clock.now()
    org.save()
    audit_record(
        action=f"organization.{name}",
        obj=org,
        actor=actor,
        actor_kind=AuditEvent.ActorKind.STAFF
        if getattr(actor, "is_authenticated", False)
        else AuditEvent.ActorKind.SYSTEM,
        actor_label=actor_label,
        customer=org.billing_customer,
        before=before,
        after=snapshot(org, SNAPSHOT_FIELDS),
        reason=reason,
    )
    return org, before


def _pending_application(org: Organization) -> VerificationApplication | None:
    return (
        VerificationApplication.objects.select_for_update()
        .filter(organization=org, decision=VerificationApplication.Decision.PENDING)
        .order_by("-submitted_at", "-id")
        .first()
    )


def organization_start_review(*, organization: Organization, reviewer, reason: str = "") -> Organization:
    with transaction.atomic():
        org, _ = _transition(organization=organization, name="start_review", actor=reviewer, reason=reason)
        application = _pending_application(org)
        if application is not None:
            if getattr(reviewer, "is_authenticated", False):
                application.reviewer = reviewer
            application.review_started_at = clock.now()
            if reason:
                application.review_notes = reason
            application.save(update_fields=["reviewer", "review_started_at", "review_notes"])
    return org


def _decide(org: Organization, reviewer, decision: str, reason: str) -> None:
    application = _pending_application(org)
    if application is None:
        application = VerificationApplication.objects.create(organization=org, submitted_at=org.submitted_at)
    if getattr(reviewer, "is_authenticated", False):  # a System cause leaves the application's reviewer as it was
        application.reviewer = reviewer
    application.decision = decision
    application.reason = reason
    application.decided_at = clock.now()
    application.save()


def organization_verify(*, organization: Organization, reviewer, reason: str = "") -> Organization:
    """Verify: the org gets its subscription and first invoice; its admins get the gold badge."""
    with transaction.atomic():
        org, _ = _transition(organization=organization, name="verify", actor=reviewer, reason=reason)
        _decide(org, reviewer, VerificationApplication.Decision.VERIFIED, reason)
        org_billing_start(organization=org, cause=_cause(reviewer, "", reason or "verified", authorized_by=VERIFY_PERM))
        entitlements_invalidate(badge_holder_external_ids(org.pk))
    return org


def organization_reject(*, organization: Organization, reviewer, reason: str) -> Organization:
    with transaction.atomic():
        org, _ = _transition(organization=organization, name="reject", actor=reviewer, reason=reason)
        _decide(org, reviewer, VerificationApplication.Decision.REJECTED, reason)
    return org


def organization_reapply(
    *, organization: Organization, documents: list[dict] | None = None, notes: str = "", actor_label: str = ""
) -> Organization:
    """A rejected organization applies again: a new application, back at the end of the queue."""
    with transaction.atomic():
        org, _ = _transition(organization=organization, name="reapply", actor=System(actor_label or "applicant"))
        VerificationApplication.objects.create(
            organization=org, submitted_at=org.submitted_at, documents=documents or [], applicant_notes=notes
        )
    return org


def organization_suspend(
    *,
    organization: Organization,
    actor,
    reason: str,
    cause: str = Organization.SuspensionCause.COMPLIANCE,
    actor_label: str = "",
) -> Organization:
    """Suspend: the org badge and every affiliate badge go at once."""
    with transaction.atomic():
        org, _ = _transition(
            organization=organization,
            name="suspend",
            actor=actor,
            actor_label=actor_label,
            reason=reason,
            kwargs={"cause": cause},
        )
        entitlements_invalidate(badge_holder_external_ids(org.pk))
    return org


def organization_reinstate(*, organization: Organization, actor, reason: str, actor_label: str = "") -> Organization:
    with transaction.atomic():
        org, _ = _transition(
            organization=organization, name="reinstate", actor=actor, actor_label=actor_label, reason=reason
        )
        entitlements_invalidate(badge_holder_external_ids(org.pk))
    return org


def organization_cancel(*, organization: Organization, actor, reason: str, actor_label: str = "") -> Organization:
    """Cancel: badges go, live affiliations end (freeing the accounts), the subscription is canceled."""
    with transaction.atomic():
        org, _ = _transition(
            organization=organization, name="cancel", actor=actor, actor_label=actor_label, reason=reason
        )
        holders = badge_holder_external_ids(org.pk)
        now = clock.now()
        ended = list(
            Affiliation.objects.select_for_update()
            .filter(organization=org, state__in=Affiliation.LIVE_STATES)
            .values_list("id", "customer_id", "state")
        )
        if ended:
            Affiliation.objects.filter(pk__in=[a[0] for a in ended]).update(
                state=Affiliation.State.REMOVED, ended_at=now
            )
            events = []
            for aff_id, customer_id, state in ended:
                event = audit_event_build(
                    action="affiliation.remove",
                    object_type="verified_orgs.affiliation",
                    object_id=aff_id,
                    actor=actor,
                    actor_label=actor_label,
                    before={"state": state},
                    after={"state": Affiliation.State.REMOVED},
                    reason=f"Organization cancelled: {reason}",
                )
                event.customer_id = customer_id
                events.append(event)
            audit_events_write(events)
        sub = org.subscription
        if sub is not None and sub.state in (
            Subscription.State.ACTIVE,
            Subscription.State.TRIALING,
            Subscription.State.IN_GRACE_PERIOD,
            Subscription.State.ON_HOLD,
        ):
            subscription_change_state(
                subscription=sub,
                transition="cancel",
                cause=_cause(actor, actor_label, reason, authorized_by=TRANSITION_PERMS["cancel"]),
                transition_kwargs={"reason": "organization_cancelled"},
            )
        entitlements_invalidate(holders)
    return org


def organization_set_seat_limit(
    *, organization: Organization, actor, seat_limit: int | None, reason: str = ""
) -> Organization:
    """Staff set (or clear) the seat limit. Existing seats stay; new invitations respect it."""
    require_perm(actor, CHANGE_PERM)
    if seat_limit is not None and seat_limit < 0:
        raise InvalidInput("A seat limit cannot be negative.")
    with transaction.atomic():
        org = organization_lock(organization.pk)
        if org.seat_limit == seat_limit:
            return org
        before = snapshot(org, SNAPSHOT_FIELDS)
        org.seat_limit = seat_limit
        org.updated_at = clock.now()
        org.save(update_fields=["seat_limit", "updated_at"])
        audit_record(
            action="organization.set_seat_limit",
            obj=org,
            actor=actor,
            customer=org.billing_customer,
            before=before,
            after=snapshot(org, SNAPSHOT_FIELDS),
            reason=reason,
        )
    return org


def organization_update(*, organization: Organization, actor, changes: dict, reason: str = "") -> Organization:
    """Staff correct an organization's details (``EDITABLE_FIELDS``), audited with before and after."""
    require_perm(actor, CHANGE_PERM)
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"These organization fields are not edited here: {', '.join(sorted(unknown))}.")
    if "country" in changes:
        changes = {**changes, "country": (changes["country"] or "").upper()}
    with transaction.atomic():
        org = organization_lock(organization.pk)
        changed = {name: value for name, value in changes.items() if getattr(org, name) != value}
        if not changed:
            return org
        before = snapshot(org, list(changed))
        for name, value in changed.items():
            setattr(org, name, value)
        org.clean_fields(exclude=[f.name for f in Organization._meta.fields if f.name not in changed])
        org.updated_at = clock.now()
        org.save(update_fields=[*changed, "updated_at"])
        audit_record(
            action="organization.update",
            obj=org,
            actor=actor,
            customer=org.billing_customer,
            before=before,
            after=snapshot(org, list(changed)),
            reason=reason,
        )
    return org


def organization_admin_add(
    *, organization: Organization, customer: Customer, actor, reason: str = ""
) -> OrganizationAdmin:
    """Make a customer an admin of the organization (they manage affiliates and carry its gold badge)."""
    require_perm(actor, CHANGE_PERM)
    with transaction.atomic():
        org = organization_lock(organization.pk)
        row, created = OrganizationAdmin.objects.get_or_create(organization=org, customer=customer)
        if created:
            audit_record(
                action="organization.admin_add",
                obj=org,
                actor=actor,
                customer=customer,
                after={"admin": customer.external_id},
                reason=reason,
            )
            entitlements_invalidate([customer.external_id])
    return row


def organization_admin_remove(*, organization: Organization, customer: Customer, actor, reason: str = "") -> None:
    require_perm(actor, CHANGE_PERM)
    with transaction.atomic():
        org = organization_lock(organization.pk)
        deleted, _ = OrganizationAdmin.objects.filter(organization=org, customer=customer).delete()
        if deleted:
            audit_record(
                action="organization.admin_remove",
                obj=org,
                actor=actor,
                customer=customer,
                before={"admin": customer.external_id},
                reason=reason,
            )
            entitlements_invalidate([customer.external_id])


def verification_application_notes_set(*, application_id: int, actor, notes: str) -> VerificationApplication:
    """A reviewer's notes on an application, audited (the decision itself is verify / reject)."""
    require_perm(actor, NOTES_PERM)
    with transaction.atomic():
        application = VerificationApplication.objects.select_for_update().filter(pk=application_id).first()
        if application is None:
            raise NotFound("No such application.")
        if application.review_notes == notes:
            return application
        before = snapshot(application, ["review_notes"])
        application.review_notes = notes
        application.save(update_fields=["review_notes"])
        audit_record(
            action="verification_application.notes",
            obj=application,
            actor=actor,
            before=before,
            after=snapshot(application, ["review_notes"]),
        )
    return application


# What the admin's transition buttons call, by transition name.
STAFF_TRANSITIONS = {
    "start_review": lambda org, user, reason: organization_start_review(organization=org, reviewer=user, reason=reason),
    "verify": lambda org, user, reason: organization_verify(organization=org, reviewer=user, reason=reason),
    "reject": lambda org, user, reason: organization_reject(organization=org, reviewer=user, reason=reason),
    "suspend": lambda org, user, reason: organization_suspend(organization=org, actor=user, reason=reason),
    "reinstate": lambda org, user, reason: organization_reinstate(organization=org, actor=user, reason=reason),
    "cancel": lambda org, user, reason: organization_cancel(organization=org, actor=user, reason=reason),
}
