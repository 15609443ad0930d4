"""Growth demo: a running two-arm price experiment with exposed customers, and a web promo code with redemptions."""

from __future__ import annotations

import datetime

from monetization import clock
from monetization.models import Customer
from monetization.services.permissions import System
from subscriptions.models import Experiment, ExperimentArm, Price, PromoCode
from subscriptions.services.experiments import experiment_expose, experiment_start
from subscriptions.services.promo_codes import promo_code_redeem

EXPERIMENT_KEY = "premium-web-paywall"
PROMO_CODE = "WELCOME20"
SEED = System("demo seed")


def seed(*, rng, out, options) -> None:
    if Experiment.objects.filter(key=EXPERIMENT_KEY).exists():
        out.write("  growth demo already seeded")
        return
    control_price = (
        Price.objects.filter(plan__code="premium-monthly", country="US", platform="", valid_until__isnull=True)
        .order_by("-valid_from")
        .first()
    )
    experiment = Experiment.objects.create(key=EXPERIMENT_KEY, name="Premium web paywall: annual first", salt="demo-1")
    if control_price is not None:
        ExperimentArm.objects.create(experiment=experiment, key="control", weight=50, price=control_price)
    else:
        ExperimentArm.objects.create(experiment=experiment, key="control", weight=50, offering={"paywall": "monthly"})
    ExperimentArm.objects.create(
        experiment=experiment,
        key="annual-first",
        weight=50,
        offering={"paywall": "annual-first", "highlight": "premium-annual"},
    )
    experiment_start(actor=SEED, experiment_id=experiment.pk, reason="demo seed")
    customers = list(Customer.objects.order_by("id").values_list("external_id", flat=True)[:200])
    for external_id in customers:
        experiment_expose(experiment_key=EXPERIMENT_KEY, customer_external_id=external_id)

    PromoCode.objects.create(
        code=PROMO_CODE,
        description="20% off the first web month",
        stripe_promotion_code_id="promo_demo_welcome20",
        max_redemptions=100,
        expires_at=clock.now() + datetime.timedelta(days=30),
    )
    for external_id in customers[:25]:
        promo_code_redeem(code=PROMO_CODE, customer_external_id=external_id, client_label="demo web checkout")
    out.write(
        f"  growth: experiment {EXPERIMENT_KEY} ({len(customers)} exposed), promo code {PROMO_CODE} (25 redeemed)"
    )
