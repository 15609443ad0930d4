"""Price experiments: deterministic assignment, exposure recorded once, staff start/stop (audited)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django_fsm import can_proceed

from monetization.errors import GrowthErrorCode, IllegalTransition, InvalidInput, NotFound
from monetization.models import Customer
from monetization.services.audit import audit_record, snapshot
from monetization.services.permissions import require_perm
from subscriptions.models import Experiment, ExperimentArm, ExperimentExposure

AUDITED_FIELDS = ["key", "name", "salt", "state", "started_at", "stopped_at"]


def assignment_bucket(salt: str, external_id: str, total_weight: int) -> int:
    """A point in [0, total_weight): the first 8 bytes of sha256(salt + external id), reduced.

    2**64 against weights in the thousands makes the modulo bias negligible.
    """
    digest = hashlib.sha256(f"{salt}{external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % total_weight


def arm_assign(salt: str, external_id: str, weights: Sequence[tuple[str, int]]) -> str:
    """The arm whose weight range holds the customer's bucket (arms in their stored order)."""
    total = sum(weight for _, weight in weights)
    if total <= 0:
        raise InvalidInput("An experiment needs at least one arm with a positive weight.")
    bucket = assignment_bucket(salt, external_id, total)
    for key, weight in weights:
        if bucket < weight:
            return key
        bucket -= weight
    raise AssertionError("unreachable: the bucket is below the total weight")


@dataclass(frozen=True)
class Exposure:
    experiment: Experiment
    arm: ExperimentArm | None  # None: a stopped experiment this customer never saw


def experiment_expose(*, experiment_key: str, customer_external_id: str) -> Exposure:
    """The customer's arm, recorded the first time (INSERT ... ON CONFLICT DO NOTHING, so concurrent
    first calls agree on one row). A stored exposure always wins: weights edited later or a stopped
    experiment never move an assigned customer."""
    experiment = Experiment.objects.filter(key=experiment_key).exclude(state=Experiment.State.DRAFT).first()
    if experiment is None:
        raise NotFound(f"No running experiment '{experiment_key}'.", code=GrowthErrorCode.EXPERIMENT_NOT_FOUND)
    customer_id = Customer.objects.filter(external_id=customer_external_id).values_list("id", flat=True).first()
    if customer_id is None:
        raise NotFound(f"No customer with external id '{customer_external_id}'.")
    stored = _stored_exposure(experiment, customer_id)
    if stored is not None:
        return Exposure(experiment, stored.arm)
    if experiment.state == Experiment.State.STOPPED:
        return Exposure(experiment, None)
    arms = list(experiment.arms.select_related("price").order_by("id"))
    chosen = arm_assign(experiment.salt, customer_external_id, [(a.key, a.weight) for a in arms])
    arm = next(a for a in arms if a.key == chosen)
    ExperimentExposure.objects.bulk_create(
        [ExperimentExposure(experiment=experiment, arm=arm, customer_id=customer_id)], ignore_conflicts=True
    )
    # Another request may have won the insert (same arm unless the weights changed in between): theirs stands.
    return Exposure(experiment, _stored_exposure(experiment, customer_id).arm)


def _stored_exposure(experiment: Experiment, customer_id: int) -> ExperimentExposure | None:
    return (
        ExperimentExposure.objects.select_related("arm__price")
        .filter(experiment=experiment, customer_id=customer_id)
        .first()
    )


def experiment_saved(*, actor, experiment: Experiment, created: bool, before: dict | None = None) -> None:
    """Audit a staff edit of an experiment (the admin saves the form, then calls this)."""
    require_perm(actor, "subscriptions.add_experiment" if created else "subscriptions.change_experiment")
    audit_record(
        action="experiment.created" if created else "experiment.changed",
        obj=experiment,
        actor=actor,
        before=before,
        after=snapshot(experiment, AUDITED_FIELDS),
    )


def _transition(*, actor, experiment_id: int, name: str, reason: str) -> Experiment:
    require_perm(actor, "subscriptions.change_experiment")
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment_id)
        before = snapshot(experiment, AUDITED_FIELDS)
        method = getattr(experiment, name)
        if not can_proceed(method):
            raise IllegalTransition(f"Cannot {name} an experiment that is {experiment.state}.")
        if name == "start" and not experiment.arms.exists():
            raise InvalidInput("Add arms before starting the experiment.")
        method()
        experiment.save()
        audit_record(
            action=f"experiment.{name}",
            obj=experiment,
            actor=actor,
            before=before,
            after=snapshot(experiment, AUDITED_FIELDS),
            reason=reason,
        )
    return experiment


def experiment_start(*, actor, experiment_id: int, reason: str = "") -> Experiment:
    return _transition(actor=actor, experiment_id=experiment_id, name="start", reason=reason)


def experiment_stop(*, actor, experiment_id: int, reason: str = "") -> Experiment:
    """Stop assigning new customers; everyone already exposed keeps their arm."""
    return _transition(actor=actor, experiment_id=experiment_id, name="stop", reason=reason)
