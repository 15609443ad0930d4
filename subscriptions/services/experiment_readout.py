"""A price experiment's readout: per arm, what exposure led to, with 95% confidence intervals.

Per arm, counted over the customers exposed to it, from what happened after their exposure:

- ``exposures``: customers shown the arm (each once);
- ``trial_starts``: of them, those who started a subscription with a free trial;
- ``conversions``: those who paid (a captured payment after a trial, or a first payment);
- ``revenue``: what they paid, net of refunds, in one currency (the reporting currency unless
  asked otherwise; payments in other currencies are counted apart, never converted silently),
  and its mean per exposure;
- ``retention_30`` / ``retention_60``: of the converted customers whose first subscription after
  exposure started at least 30 (60) days before the readout, those whose subscription had not
  ended 30 (60) days after it started.

Proportions get Wilson score intervals; revenue per exposure a normal interval on the mean
(customers who paid nothing count as zeros). Each arm's difference from the control arm (the arm
keyed ``control``, else the first arm) gets Newcombe's interval (from the two Wilson intervals)
for proportions and Welch's normal interval for revenue per exposure.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import DecimalField, Exists, ExpressionWrapper, F, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from monetization import clock
from monetization.errors import GrowthErrorCode, NotFound
from monetization.models import Payment
from subscriptions.models import Experiment, ExperimentExposure, Subscription

Z95 = 1.959963984540054
PAID = [Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED, Payment.Status.REFUNDED]
RETENTION_DAYS = (30, 60)


@dataclass(frozen=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Proportion:
    count: int
    of: int
    rate: Interval
    vs_control: Interval | None  # None for the control arm itself


@dataclass(frozen=True)
class ArmReadout:
    arm: str
    is_control: bool
    exposures: int
    trial_starts: Proportion
    conversions: Proportion
    revenue: str  # net, in the readout's currency
    revenue_per_exposure: Interval
    revenue_per_exposure_vs_control: Interval | None
    retention: dict[int, Proportion] = field(default_factory=dict)


@dataclass(frozen=True)
class Readout:
    experiment: str
    state: str
    currency: str
    at: datetime
    arms: list[ArmReadout]
    payments_in_other_currencies: int

    def as_dict(self) -> dict:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        for arm in data["arms"]:
            arm["retention"] = {f"{days}d": value for days, value in arm["retention"].items()}
        return data


# --- statistics ----------------------------------------------------------------------------------


def wilson(count: int, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval of a proportion (None when nothing was observed)."""
    if n == 0:
        return Interval(None, None, None)
    p = count / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 and n the bounds are exactly 0 and 1 (floating point would miss them by an ulp).
    low = 0.0 if count == 0 else max(0.0, centre - half)
    high = 1.0 if count == n else min(1.0, centre + half)
    return Interval(p, low, high)


def newcombe(arm: Interval, control: Interval) -> Interval:
    """Newcombe's hybrid score interval of a difference of two proportions, from their Wilson intervals."""
    if arm.value is None or control.value is None:
        return Interval(None, None, None)
    d = arm.value - control.value
    low = d - math.sqrt((arm.value - arm.low) ** 2 + (control.high - control.value) ** 2)
    high = d + math.sqrt((arm.high - arm.value) ** 2 + (control.value - control.low) ** 2)
    return Interval(d, low, high)


def mean_interval(values: list[float], z: float = Z95) -> tuple[Interval, float]:
    """The mean with a normal interval, and the squared standard error (for a difference)."""
    n = len(values)
    if n == 0:
        return Interval(None, None, None), 0.0
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    se2 = variance / n
    half = z * math.sqrt(se2)
    return Interval(mean, mean - half, mean + half), se2


def welch(arm: tuple[Interval, float], control: tuple[Interval, float], z: float = Z95) -> Interval:
    if arm[0].value is None or control[0].value is None:
        return Interval(None, None, None)
    d = arm[0].value - control[0].value
    half = z * math.sqrt(arm[1] + control[1])
    return Interval(d, d - half, d + half)


# --- the readout ---------------------------------------------------------------------------------


def experiment_readout(*, experiment_id: int, currency: str = "", at: datetime | None = None) -> Readout:
    """The readout of one experiment (one query per arm list, one for the exposures' outcomes)."""
    experiment = Experiment.objects.filter(pk=experiment_id).first()
    if experiment is None:
        raise NotFound(f"No experiment {experiment_id}.", code=GrowthErrorCode.EXPERIMENT_NOT_FOUND)
    currency = (currency or settings.REPORTING_CURRENCY).upper()
    at = at or clock.now()
    arms = list(experiment.arms.order_by("id"))
    control = next((a for a in arms if a.key == "control"), arms[0] if arms else None)

    after_exposure = {"customer_id": OuterRef("customer_id"), "occurred_at__gte": OuterRef("exposed_at")}
    paid = Payment.objects.filter(**after_exposure, status__in=PAID, occurred_at__lte=at)
    net = ExpressionWrapper(F("amount") - F("refunded"), output_field=DecimalField(max_digits=19, decimal_places=4))
    revenue = (
        paid.filter(amount_currency=currency).order_by().values("customer_id").annotate(total=Sum(net)).values("total")
    )
    later_subscriptions = Subscription.objects.filter(
        customer_id=OuterRef("customer_id"), started_at__gte=OuterRef("exposed_at"), started_at__lte=at
    ).order_by("started_at", "id")
    rows = (
        ExperimentExposure.objects.filter(experiment=experiment, exposed_at__lte=at)
        .annotate(
            trial=Exists(later_subscriptions.filter(trial_end__isnull=False)),
            converted=Exists(paid.filter(amount__gt=0)),
            revenue=Coalesce(Subquery(revenue), Decimal(0), output_field=DecimalField(max_digits=19, decimal_places=4)),
            other_currency=Exists(paid.exclude(amount_currency=currency)),
            sub_started=Subquery(later_subscriptions.values("started_at")[:1]),
            sub_ended=Subquery(later_subscriptions.values("ended_at")[:1]),
        )
        .values_list("arm_id", "trial", "converted", "revenue", "other_currency", "sub_started", "sub_ended")
    )
    by_arm: dict[int, list[tuple]] = defaultdict(list)
    other = 0
    for arm_id, trial, converted, amount, other_currency, started, ended in rows:
        by_arm[arm_id].append((trial, converted, amount, started, ended))
        other += other_currency

    def outcomes(arm_id: int) -> dict:
        rows = by_arm.get(arm_id, [])
        n = len(rows)
        retained: dict[int, tuple[int, int]] = {}
        for days in RETENTION_DAYS:
            eligible = [
                (started, ended)
                for _, converted, _, started, ended in rows
                if converted and started is not None and started <= at - timedelta(days=days)
            ]
            kept = sum(1 for started, ended in eligible if ended is None or ended > started + timedelta(days=days))
            retained[days] = (kept, len(eligible))
        return {
            "n": n,
            "trials": sum(1 for r in rows if r[0]),
            "conversions": sum(1 for r in rows if r[1]),
            "revenue": sum((r[2] for r in rows), Decimal(0)),
            "per_exposure": mean_interval([float(r[2]) for r in rows]),
            "retained": retained,
        }

    c = outcomes(control.pk) if control else None
    result = []
    for arm in arms:
        out = outcomes(arm.pk)
        is_control = control is not None and arm.pk == control.pk
        vs = None if is_control else c  # the control's outcomes, for every arm but the control
        result.append(
            ArmReadout(
                arm=arm.key,
                is_control=is_control,
                exposures=out["n"],
                trial_starts=_proportion(out["trials"], out["n"], vs and (vs["trials"], vs["n"])),
                conversions=_proportion(out["conversions"], out["n"], vs and (vs["conversions"], vs["n"])),
                revenue=str(out["revenue"].quantize(Decimal("0.01"))),
                revenue_per_exposure=out["per_exposure"][0],
                revenue_per_exposure_vs_control=vs and welch(out["per_exposure"], vs["per_exposure"]),
                retention={
                    days: _proportion(*out["retained"][days], vs and vs["retained"][days]) for days in RETENTION_DAYS
                },
            )
        )
    return Readout(
        experiment=experiment.key,
        state=experiment.state,
        currency=currency,
        at=at,
        arms=result,
        payments_in_other_currencies=other,
    )


def _proportion(count: int, of: int, control: tuple[int, int] | None) -> Proportion:
    rate = wilson(count, of)
    return Proportion(count, of, rate, None if control is None else newcombe(rate, wilson(*control)))
