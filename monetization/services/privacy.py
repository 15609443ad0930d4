"""Personal data requests: export what we hold on a customer; erase it on request.

Erasure pseudonymizes: the customer's e-mail, handle and the names providers sent are replaced
by ``erased-<customer id>`` wherever the registered sources hold them (see
:mod:`monetization.personal_data`), while amounts, dates, accounts and keys stay for the books.
Provider subscriptions are cancelled where we can (apps plug in through :data:`erasure_hooks`);
what only the customer can cancel is listed in the request's outcome for Support.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.db.models import F, Func, Value
from django_fsm import can_proceed

from monetization.errors import Conflict, ErrorCode, IllegalTransition, InvalidInput
from monetization.models import Customer, ErasureRequest
from monetization.personal_data import (
    Subject,
    personal_data_sources,
    pseudonym_for,
    subject_for,
    text_matches,
)
from monetization.registry import Registry
from monetization.selectors_privacy import customer_personal_data
from monetization.services.audit import audit_record
from monetization.services.permissions import require_perm

PERM_REQUEST = "monetization.add_erasurerequest"
PERM_EXECUTE = "monetization.execute_erasurerequest"
PERM_EXPORT = "monetization.export_personal_data"

# What an app does for an erasure before the data is pseudonymized (cancel what it can, list what
# only the customer can): erasure_hooks.register(name, fn(*, customer, erasure, actor, reason) -> [item]).
# Each item is JSON (no personal data): {"action": "cancelled" | "customer_must_cancel" | ..., ...}.
erasure_hooks: Registry[Callable[..., list[dict[str, Any]]]] = Registry("erasure hook")


def _reason_required(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(f"{what} needs a reason.", code=ErrorCode.REASON_REQUIRED)
    return reason


# --- export -----------------------------------------------------------------------------------


def personal_data_export(*, customer: Customer, actor) -> dict[str, Any]:
    """Everything held on ``customer`` as one JSON document; Compliance only, audited."""
    require_perm(actor, PERM_EXPORT)
    document = customer_personal_data(customer)
    audit_record(
        action="privacy.export",
        obj=customer,
        actor=actor,
        customer=customer,
        after={"rows": {label: len(rows) for label, rows in document["sources"].items()}},
    )
    return document


# --- the erasure queue --------------------------------------------------------------------------


def erasure_request_create(*, customer: Customer, actor, reason: str) -> ErasureRequest:
    """Queue an erasure, due in 30 days. One open request per customer."""
    require_perm(actor, PERM_REQUEST)
    reason = _reason_required(reason, "An erasure request")
    try:
        with transaction.atomic():
            erasure = ErasureRequest.objects.create(
                customer=customer, reason=reason, requested_by=actor if getattr(actor, "pk", None) else None
            )
            audit_record(
                action="privacy.erasure_request",
                obj=erasure,
                actor=actor,
                customer=customer,
                after={"state": erasure.state, "due_at": erasure.due_at},
                reason=reason,
            )
    except IntegrityError:
        raise Conflict("This customer already has an open erasure request.") from None
    return erasure


def _locked(erasure: ErasureRequest) -> ErasureRequest:
    return ErasureRequest.objects.select_for_update().get(pk=erasure.pk)


def _ensure(erasure: ErasureRequest, transition: str) -> None:
    if not can_proceed(getattr(erasure, transition)):
        raise IllegalTransition(f"Cannot {transition} an erasure request that is {erasure.state}.")


def erasure_request_start(*, erasure: ErasureRequest, actor) -> ErasureRequest:
    """Compliance takes the request on (the person is verified)."""
    require_perm(actor, PERM_EXECUTE)
    with transaction.atomic():
        locked = _locked(erasure)
        _ensure(locked, "start")
        locked.start(by=actor)
        locked.save()
        audit_record(
            action="privacy.erasure_start",
            obj=locked,
            actor=actor,
            customer=locked.customer,
            before={"state": ErasureRequest.State.REQUESTED},
            after={"state": locked.state},
        )
    return locked


def erasure_request_reject(*, erasure: ErasureRequest, actor, reason: str) -> ErasureRequest:
    require_perm(actor, PERM_EXECUTE)
    reason = _reason_required(reason, "Rejecting an erasure request")
    with transaction.atomic():
        locked = _locked(erasure)
        _ensure(locked, "reject")
        before = locked.state
        locked.reject(by=actor, reason=reason)
        locked.save()
        audit_record(
            action="privacy.erasure_reject",
            obj=locked,
            actor=actor,
            customer=locked.customer,
            before={"state": before},
            after={"state": locked.state},
            reason=reason,
        )
    return locked


def erasure_request_execute(*, erasure: ErasureRequest, actor, reason: str = "") -> ErasureRequest:
    """Cancel what we can, pseudonymize every personal field, record who and why. One transaction:
    a failure half-way leaves the data as it was (provider cancellations carry idempotency keys,
    so the retry asks the provider again harmlessly). Executing a done request changes nothing."""
    require_perm(actor, PERM_EXECUTE)
    with transaction.atomic():
        locked = _locked(erasure)
        if locked.state == ErasureRequest.State.DONE:
            return locked
        _ensure(locked, "complete")
        customer = Customer.objects.select_for_update().get(pk=locked.customer_id)
        reason = (reason or "").strip() or "erasure executed"
        before = locked.state
        items: list[dict[str, Any]] = []
        for hook in erasure_hooks:
            items.extend(hook(customer=customer, erasure=locked, actor=actor, reason=f"erasure request #{locked.pk}"))
        subject = subject_for(customer)
        counts = pseudonymize(subject)
        customer.handle = pseudonym_for(customer)
        customer.email = ""
        customer.save(update_fields=["handle", "email"])
        locked.refresh_from_db(fields=["reason"])  # pseudonymized in the table just now
        outcome = {
            "cancelled": [i for i in items if i.get("action") == "cancelled"],
            "customer_must_cancel": [i for i in items if i.get("action") == "customer_must_cancel"],
            "other": [i for i in items if i.get("action") not in ("cancelled", "customer_must_cancel")],
            "pseudonymized_rows": counts,
        }
        # The staff's words are kept as the why, without the identifiers they may quote.
        reason = scrub_text(reason, subject)
        locked.complete(by=actor, reason=reason, outcome=outcome)
        locked.save()
        audit_record(
            action="privacy.erasure_execute",
            obj=locked,
            actor=actor,
            customer=customer,
            before={"state": before},
            after={"state": locked.state, "outcome": outcome},
            reason=reason,
        )
    return locked


# --- pseudonymization ---------------------------------------------------------------------------


def scrub_text(text: str, subject: Subject) -> str:
    """``text`` with the subject's identifiers replaced, by the same expression as the tables."""
    pattern = subject.pattern
    if not text or not pattern:
        return text
    with connection.cursor() as cursor:
        cursor.execute("SELECT regexp_replace(%s, %s, %s, 'gi')", [text, pattern, pseudonym_for(subject.customer)])
        return cursor.fetchone()[0]


def _scrubbed(field: models.Field, pattern: str, marker: str):
    if isinstance(field, models.JSONField):
        return Func(
            F(field.name), Value(pattern), Value(marker), function="monetization_scrub_jsonb", output_field=field
        )
    replaced = Func(
        F(field.name), Value(pattern), Value(marker), Value("gi"), function="regexp_replace", output_field=field
    )
    if getattr(field, "max_length", None):
        # The pseudonym may be longer than what it replaces: stay within the column.
        return Func(replaced, Value(field.max_length), function="left", output_field=field)
    return replaced


def pseudonymize(subject: Subject) -> dict[str, int]:
    """Replace the subject's identifiers in every registered source's rows; rows changed per source."""
    pattern = subject.pattern
    marker = pseudonym_for(subject.customer)
    counts: dict[str, int] = {}
    if not pattern:
        return counts
    # Select every source's rows before changing any: the audit trail finds its rows through the others.
    targets = []
    for label, source in personal_data_sources.items():
        fields = source.scrubbed_fields()
        if not fields:
            continue
        matching = text_matches(source.queryset(subject), [f.name for f in fields], pattern)
        ids = list(matching.values_list("pk", flat=True))
        if ids:
            targets.append((label, source, fields, ids))
    for label, source, fields, ids in targets:
        model = source.model_class
        if source.append_only:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT monetization_pseudonymize(%s::regclass, %s::bigint[], %s::text[], %s, %s)",
                    [model._meta.db_table, ids, [f.column for f in fields], pattern, marker],
                )
                counts[label] = cursor.fetchone()[0]
        else:
            counts[label] = model._default_manager.filter(pk__in=ids).update(
                **{f.name: _scrubbed(f, pattern, marker) for f in fields}
            )
    return counts
