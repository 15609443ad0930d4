"""The price experiment readout: per arm outcomes after exposure, checked against a plain computation."""

from __future__ import annotations

import datetime
import math
import random
from decimal import Decimal

import pytest
from djmoney.money import Money
from hypothesis import given
from hypothesis import strategies as st

from monetization.models import Customer, Payment
from subscriptions.models import Experiment, ExperimentArm, ExperimentExposure, Subscription
from subscriptions.services.experiment_readout import Z95, experiment_readout, newcombe, wilson
from tests.creators.factories import staff
from tests.subscriptions.factories import PlanFactory, PriceFactory

NOW = datetime.datetime(2026, 9, 1, 12, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def test_wilson_and_newcombe_reproduce_newcombes_published_examples():
    # Newcombe (1998), Statistics in Medicine 17: 81/263 -> 0.2553 to 0.3662 (Wilson score) ...
    w = wilson(81, 263)
    assert (round(w.low, 4), round(w.high, 4)) == (0.2553, 0.3662)
    # ... and 56/70 - 48/80 = 0.2000, method 10: 0.0524 to 0.3339.
    d = newcombe(wilson(56, 70), wilson(48, 80))
    assert (round(d.value, 4), round(d.low, 4), round(d.high, 4)) == (0.2, 0.0524, 0.3339)
    assert wilson(0, 10).low == 0.0 and wilson(10, 10).high == 1.0 and wilson(0, 0).value is None


counts = st.integers(min_value=1, max_value=100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(arm=counts, control=counts)
def test_intervals_hold_their_estimate_inside_the_possible_range(arm, control):
    a, c = wilson(*arm), wilson(*control)
    for interval in (a, c):
        assert 0.0 <= interval.low <= interval.value <= interval.high <= 1.0
    d = newcombe(a, c)
    assert -1.0 <= d.low <= d.value <= d.high <= 1.0
    assert d.value == pytest.approx(arm[0] / arm[1] - control[0] / control[1])


def _history(seed: int):
    """Customers exposed to three arms, with subscriptions and payments before and after exposure."""
    rng = random.Random(seed)
    plan = PlanFactory(code=f"readout-{seed}")
    experiment = Experiment.objects.create(key=f"readout-{seed}", name="readout", salt=str(seed))
    arms = [
        ExperimentArm.objects.create(experiment=experiment, key=key, weight=1, price=PriceFactory(plan=plan))
        for key in ("cheaper", "control", "dearer")
    ]
    customers = Customer.objects.bulk_create(
        [Customer(external_id=f"r{seed}-{i}", handle=f"r{seed}h{i}") for i in range(240)]
    )
    exposures, subs, payments, facts = [], [], [], []
    for i, customer in enumerate(customers):
        arm = rng.choice(arms)
        exposed = NOW - rng.randrange(5, 120) * DAY - rng.randrange(0, 86400) * datetime.timedelta(seconds=1)
        if rng.random() < 0.05:
            exposed = NOW + 2 * DAY  # exposed after the readout's moment: not counted
        exposures.append(ExperimentExposure(experiment=experiment, arm=arm, customer=customer, exposed_at=exposed))
        fact = {"arm": arm.key, "exposed": exposed, "subs": [], "payments": []}
        # Sometimes a subscription from before the exposure (it does not count), then maybe one after.
        for n, started in enumerate(
            [exposed - rng.randrange(1, 200) * DAY] * (rng.random() < 0.2)
            + [exposed + rng.randrange(0, 20) * DAY] * (rng.random() < 0.6)
        ):
            trial = rng.random() < 0.5
            ended = started + rng.randrange(1, 120) * DAY if rng.random() < 0.5 else None
            subs.append(
                Subscription(
                    customer=customer,
                    plan=plan,
                    platform="web",
                    provider="stripe",
                    provider_subscription_id=f"sub_r{seed}_{i}_{n}",
                    state=Subscription.State.ACTIVE if ended is None else Subscription.State.EXPIRED,
                    started_at=started,
                    ended_at=ended,
                    trial_end=started + 7 * DAY if trial else None,
                )
            )
            fact["subs"].append((started, ended, trial))
        for n in range(rng.choice([0, 0, 1, 2, 3])):
            at = exposed + rng.randrange(-30, 90) * DAY
            currency = "EUR" if rng.random() < 0.15 else "USD"
            amount = Decimal(rng.choice(["4.99", "9.99", "79.99"]))
            status = rng.choice([Payment.Status.SUCCEEDED] * 6 + [Payment.Status.FAILED, Payment.Status.REFUNDED])
            refunded = amount if status == Payment.Status.REFUNDED else Decimal(0)
            if status == Payment.Status.SUCCEEDED and rng.random() < 0.1:
                status, refunded = Payment.Status.PARTIALLY_REFUNDED, Decimal("1.00")
            payments.append(
                Payment(
                    customer=customer,
                    provider="stripe",
                    provider_reference=f"in_r{seed}_{i}_{n}",
                    amount=Money(amount, currency),
                    refunded=Money(refunded, currency),
                    status=status,
                    occurred_at=at,
                )
            )
            fact["payments"].append((at, amount, refunded, currency, status))
        facts.append(fact)
    ExperimentExposure.objects.bulk_create(exposures)
    Subscription.objects.bulk_create(subs)
    Payment.objects.bulk_create(payments)
    return experiment, facts


def _plain(facts, arm_key):
    """The readout's definitions, computed by hand from the generated facts."""
    rows = [f for f in facts if f["arm"] == arm_key and f["exposed"] <= NOW]
    out = {"n": len(rows), "trials": 0, "conversions": 0, "revenue": Decimal(0), "values": [], "retained": {}}
    retained = {30: [0, 0], 60: [0, 0]}
    for f in rows:
        later = sorted(s for s in f["subs"] if f["exposed"] <= s[0] <= NOW)
        paid = [p for p in f["payments"] if f["exposed"] <= p[0] <= NOW and p[4] != Payment.Status.FAILED and p[1] > 0]
        out["trials"] += any(s[2] for s in later)
        out["conversions"] += bool(paid)
        revenue = sum((p[1] - p[2] for p in paid if p[3] == "USD"), Decimal(0))
        out["revenue"] += revenue
        out["values"].append(float(revenue))
        if paid and later:
            started, ended, _ = later[0]
            for days in (30, 60):
                if started <= NOW - days * DAY:
                    retained[days][1] += 1
                    retained[days][0] += ended is None or ended > started + days * DAY
    out["retained"] = retained
    return out


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_readout_matches_a_plain_computation_on_a_generated_history(seed):
    experiment, facts = _history(seed)
    readout = experiment_readout(experiment_id=experiment.pk, currency="usd", at=NOW)
    assert readout.currency == "USD" and [a.arm for a in readout.arms] == ["cheaper", "control", "dearer"]
    plain = {key: _plain(facts, key) for key in ("cheaper", "control", "dearer")}
    control = plain["control"]
    assert sum(a.exposures for a in readout.arms) > 200
    for arm in readout.arms:
        p = plain[arm.arm]
        assert arm.is_control == (arm.arm == "control")
        assert arm.exposures == p["n"]
        assert (arm.trial_starts.count, arm.trial_starts.of) == (p["trials"], p["n"])
        assert (arm.conversions.count, arm.conversions.of) == (p["conversions"], p["n"])
        assert arm.revenue == str(p["revenue"].quantize(Decimal("0.01")))
        mean = sum(p["values"]) / p["n"]
        sd = math.sqrt(sum((v - mean) ** 2 for v in p["values"]) / (p["n"] - 1))
        assert arm.revenue_per_exposure.value == pytest.approx(mean)
        assert arm.revenue_per_exposure.low == pytest.approx(mean - Z95 * sd / math.sqrt(p["n"]))
        for days in (30, 60):
            assert (arm.retention[days].count, arm.retention[days].of) == tuple(p["retained"][days])
        # The interval is Wilson's, around the plain rate.
        rate = arm.conversions.rate
        assert rate.value == pytest.approx(p["conversions"] / p["n"]) and rate.low <= rate.value <= rate.high
        if arm.is_control:
            assert arm.conversions.vs_control is None and arm.revenue_per_exposure_vs_control is None
        else:
            diff = arm.conversions.vs_control
            assert diff.value == pytest.approx(p["conversions"] / p["n"] - control["conversions"] / control["n"])
            assert diff.low <= diff.value <= diff.high
            c_mean = sum(control["values"]) / control["n"]
            assert arm.revenue_per_exposure_vs_control.value == pytest.approx(mean - c_mean)
    assert readout.payments_in_other_currencies == sum(
        1
        for f in facts
        if f["exposed"] <= NOW
        and any(f["exposed"] <= p[0] <= NOW and p[3] != "USD" and p[4] != Payment.Status.FAILED for p in f["payments"])
    )


@pytest.mark.django_db
def test_the_readout_is_on_the_admin_page_and_in_the_staff_api(client):
    experiment, _ = _history(9)
    viewer = staff("finance-reader", "Finance")
    client.force_login(viewer)
    page = client.get(f"/admin/subscriptions/experiment/{experiment.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="readout"' in html and "cheaper" in html and "retained at 60 days" in html
    answer = client.get(f"/api/v1/staff/experiments/{experiment.pk}/readout", {"currency": "USD"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert [a["arm"] for a in body["arms"]] == ["cheaper", "control", "dearer"]
    assert set(body["arms"][0]["retention"]) == {"30d", "60d"}
    assert body["arms"][0]["conversions"]["rate"]["low"] is not None
    assert client.get("/api/v1/staff/experiments/999999/readout").json()["code"] == "experiment_not_found"
    assert client.get(f"/api/v1/staff/experiments/{experiment.pk}/readout", {"currency": "dollars"}).status_code == 400
    client.force_login(staff("nobody", superuser=False))
    assert client.get(f"/api/v1/staff/experiments/{experiment.pk}/readout").status_code == 403
