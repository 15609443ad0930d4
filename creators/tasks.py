"""Celery tasks of revenue sharing: thin wrappers around services."""

from celery import shared_task
from django.contrib.auth import get_user_model

from monetization.services.permissions import System

from .services.cycles import cycle_compute
from .services.eligibility import eligibility_evaluate_many, reevaluation_chunks
from .services.payouts import cycle_pay


@shared_task(name="creators.tasks.eligibility_reevaluate_all")
def eligibility_reevaluate_all(chunk_size: int = 1000) -> int:
    """Fan the re-evaluation out in chunks; each chunk is its own task (retries stay small)."""
    n = 0
    for ids in reevaluation_chunks(chunk_size=chunk_size):
        eligibility_reevaluate_chunk.delay(ids)
        n += len(ids)
    return n


@shared_task(name="creators.tasks.eligibility_reevaluate_chunk")
def eligibility_reevaluate_chunk(creator_ids: list[int]) -> int:
    return len(eligibility_evaluate_many(creator_ids=creator_ids))


def _actor(user_id: int | None, label: str):
    return get_user_model().objects.get(pk=user_id) if user_id else System(label)


@shared_task(name="creators.tasks.cycle_compute")
def cycle_compute_task(cycle_id: int, user_id: int | None = None) -> None:
    cycle_compute(cycle_id=cycle_id, actor=_actor(user_id, "task:creators.cycle_compute"))


@shared_task(name="creators.tasks.cycle_pay")
def cycle_pay_task(cycle_id: int, user_id: int | None = None) -> None:
    cycle_pay(cycle_id=cycle_id, actor=_actor(user_id, "task:creators.cycle_pay"))
