"""Staff start the long runs of a cycle (computing earnings, paying payouts): checked against the
model's transition and its permission, audited with who asked, and queued on commit. The runs
themselves are ``cycles.cycle_compute`` and ``payouts.cycle_pay``, on a worker.

The task is queued inside the request's transaction, not on commit: if the broker is down the request
rolls back (no audit row claims a run that was never queued) and staff get ``service_unavailable`` to
retry. A worker that picks the task up before the commit waits on the cycle's row lock, which the run
takes first.

It sits above the tasks it queues, which sit above the services they run: services never import
tasks, so no import circle runs through here."""

from __future__ import annotations

from django.db import transaction
from django_fsm import can_proceed, has_transition_perm
from kombu.exceptions import OperationalError as BrokerUnavailable

from monetization.errors import DomainError, ErrorCode, IllegalTransition, NotFound, PermissionDenied
from monetization.services.audit import audit_record

from .models import RevenueShareCycle
from .tasks import cycle_compute_task, cycle_pay_task


def _request(*, cycle_id: int, actor, transition: str, verb: str, action: str, task):
    with transaction.atomic():
        cycle = RevenueShareCycle.objects.select_for_update().filter(pk=cycle_id).first()
        if cycle is None:
            raise NotFound("No such cycle.")
        method = getattr(cycle, transition)
        if not can_proceed(method):
            raise IllegalTransition(f"A {cycle.state} cycle cannot be {verb}.")
        if actor is None or not has_transition_perm(method, actor):
            raise PermissionDenied(f"You may not have this cycle {verb}.")
        audit_record(action=action, obj=cycle, actor=actor, before={"state": cycle.state})
        try:
            task.delay(cycle_id, actor.pk)
        except BrokerUnavailable as exc:
            raise DomainError(
                "The task queue is unavailable; nothing was queued. Try again shortly.",
                code=ErrorCode.SERVICE_UNAVAILABLE,
                status=503,
            ) from exc
    return cycle


def cycle_compute_request(*, cycle_id: int, actor) -> RevenueShareCycle:
    """Queue the computation of a cycle's earnings; the run records ``actor`` as who computed it."""
    return _request(
        cycle_id=cycle_id,
        actor=actor,
        transition="start_computing",
        verb="computed",
        action="cycle.compute_requested",
        task=cycle_compute_task,
    )


def cycle_pay_request(*, cycle_id: int, actor) -> RevenueShareCycle:
    """Queue the paying run of an approved cycle; the run records ``actor`` as who started it."""
    return _request(
        cycle_id=cycle_id,
        actor=actor,
        transition="start_paying",
        verb="paid",
        action="cycle.pay_requested",
        task=cycle_pay_task,
    )
