"""Consumption requests: a store asks how a purchase was used before it decides a refund.

Apple sends CONSUMPTION_REQUEST when a customer asks it for a refund and decides 12 hours
later with or without our answer. Where the App Store Server API is configured and the
customers consented to sharing it (``APP_STORE_CONSUMPTION_CONSENT``), the adapter answers at
once; otherwise the request waits in Support's queue (the admin, ordered by deadline).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from monetization import clock
from monetization.errors import Conflict, ErrorCode
from monetization.models import AuditEvent, ConsumptionRequest, Customer, Payment
from monetization.providers.base import ProviderError, get_provider
from monetization.services.audit import audit_record
from monetization.services.permissions import require_perm

log = logging.getLogger(__name__)
PERM_ANSWER = "monetization.change_consumptionrequest"


def consumption_request_record(
    *, provider: str, event_id: str, detail: dict, customer: Customer | None, cause
) -> tuple[ConsumptionRequest, bool]:
    """Record a store's consumption request once per notification; answer it after commit where we can."""
    payment = Payment.objects.filter(provider=provider, provider_reference=detail["transaction_id"]).first()
    request, created = ConsumptionRequest.objects.get_or_create(
        provider=provider,
        event_id=event_id,
        defaults={
            "transaction_id": detail["transaction_id"],
            "original_transaction_id": detail.get("original_transaction_id", ""),
            "customer": customer or (payment.customer if payment else None),
            "payment": payment,
            "reason": detail.get("reason", "")[:64],
            "deadline": datetime.fromisoformat(detail["deadline"]),
        },
    )
    if created:
        audit_record(
            action="consumption_request.record",
            obj=request,
            actor_kind=cause.actor_kind,
            actor_label=cause.label,
            customer=request.customer,
            after={"transaction": request.transaction_id, "reason": request.reason, "deadline": detail["deadline"]},
            reason=cause.reason,
        )
        transaction.on_commit(lambda: consumption_request_answer(request_id=request.pk))
    return request, created


def consumption_request_answer(*, request_id: int) -> bool:
    """Answer through the store's API when its adapter can; False leaves it queued for Support."""
    request = ConsumptionRequest.objects.select_related("payment").get(pk=request_id)
    if request.status != ConsumptionRequest.Status.QUEUED:
        return True
    adapter = get_provider(request.provider)
    if not getattr(adapter, "answers_consumption_requests", False):
        return False
    # What we know: the purchase was delivered (access granted); we hold no usage measure to share.
    answer = {"delivered": True, "sample_content_provided": False}
    try:
        adapter.answer_consumption_request(request.transaction_id, answer)
    except ProviderError as exc:
        ConsumptionRequest.objects.filter(pk=request.pk).update(last_error=str(exc)[:500])
        log.warning("consumption request %s left for Support: %s", request.pk, exc)
        return False
    with transaction.atomic():
        locked = ConsumptionRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status == ConsumptionRequest.Status.QUEUED:
            locked.status = ConsumptionRequest.Status.ANSWERED
            locked.answered_at = clock.now()
            locked.answer = {**answer, "by": "api"}
            locked.last_error = ""
            locked.save(update_fields=["status", "answered_at", "answer", "last_error"])
            audit_record(
                action="consumption_request.answer",
                obj=locked,
                actor_kind=AuditEvent.ActorKind.SYSTEM,
                actor_label=f"{request.provider} server API",
                customer=locked.customer,
                after=locked.answer,
            )
    return True


def consumption_request_mark_answered(*, request: ConsumptionRequest, actor, note: str) -> ConsumptionRequest:
    """Support answered it in the store's console: take it off the queue, with what they said."""
    require_perm(actor, PERM_ANSWER)
    with transaction.atomic():
        locked = ConsumptionRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status != ConsumptionRequest.Status.QUEUED:
            raise Conflict("This consumption request is already answered.", code=ErrorCode.ILLEGAL_TRANSITION)
        locked.status = ConsumptionRequest.Status.ANSWERED
        locked.answered_at = clock.now()
        locked.answer = {"by": "support", "note": note}
        locked.save(update_fields=["status", "answered_at", "answer"])
        audit_record(
            action="consumption_request.answer", obj=locked, actor=actor, customer=locked.customer, after=locked.answer
        )
    return locked
