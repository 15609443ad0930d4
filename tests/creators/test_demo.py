import io
import random

import pytest

from creators.demo import creators as demo
from creators.models import CreatorAccount, CreatorEarning, DailyEngagement, Payout, RevenueShareCycle
from tests.monetization.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def counts():
    return (
        CreatorAccount.objects.count(),
        DailyEngagement.objects.count(),
        sorted(RevenueShareCycle.objects.values_list("state", flat=True)),
        Payout.objects.count(),
        CreatorEarning.objects.count(),
    )


def test_seed_skips_without_customers():
    out = io.StringIO()
    demo.seed(rng=random.Random(1), out=out)
    assert "skipped" in out.getvalue()


def test_seed_is_idempotent_and_covers_every_state():
    CustomerFactory.create_batch(50)
    demo.seed(rng=random.Random(1), out=io.StringIO())
    first = counts()
    demo.seed(rng=random.Random(1), out=io.StringIO())
    assert counts() == first
    assert set(CreatorAccount.objects.values_list("state", flat=True)) == set(CreatorAccount.State.values)
    assert first[2] == ["closed", "in_review"]
