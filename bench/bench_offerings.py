"""The offerings endpoint's cache hits under load, next to the bare primary-key view.

- Data: the entitlements benchmark's customers (``bench_entitlements.seed``: 100,000, 10,000 with
  --quick), the demo catalog, a current offering of the consumer plans, a German country override,
  and a running paywall experiment (two arms, each an offering) every asked customer is exposed to.
- Server, load generator, rounds: those of ``bench_entitlements`` (gunicorn, 2 sync workers,
  production settings, Redis cache; N client processes in a closed loop, a new connection per
  request), scenarios alternated round by round (A B A B) so the machine's load weighs on both.
- The offerings hits are answered by the WSGI fast path (subscriptions/api/offerings_fast_path.py)
  as production serves them (backoffice/wsgi.py).
- Scenarios: ``offerings`` (``GET /api/v1/offerings?platform=..&country=..&customer=..`` for a
  working set of customers on two platforms and two countries, primed beforehand: every request
  is a hit), ``bare`` (a Django view reading one customer by primary key, bench/urls.py), and
  ``offerings_miss`` (customers never asked: exposure recorded and body rendered, for information).
Target: offerings req/s >= 1.5x bare req/s.
"""

from __future__ import annotations

import os
import random

from bench.bench_entitlements import (
    PREFIX,
    _combined,
    _free_port,
    _public,
    _request,
    load,
    seed,
    start_server,
)

ROUNDS = 4
TARGET = 1.5


def offerings_seed() -> None:
    """A current offering, a country override and a running two-arm paywall experiment (idempotent)."""
    from monetization.services.permissions import System
    from subscriptions.models import Experiment, ExperimentArm, Offering, OfferingCountry, OfferingPackage, Plan
    from subscriptions.services.experiments import experiment_start

    plans = list(Plan.objects.filter(product__kind="consumer", is_active=True).order_by("product__rank", "interval"))
    default, created = Offering.objects.get_or_create(
        key="bench-default", defaults={"name": "Bench default", "metadata": {"title": "Go further"}}
    )
    if created:
        for position, plan in enumerate(plans):
            OfferingPackage.objects.create(offering=default, key=plan.code, position=position, plan=plan)
        Offering.objects.filter(is_current=True).exclude(pk=default.pk).update(is_current=False)
        default.is_current = True
        default.save()
    annual, created = Offering.objects.get_or_create(key="bench-annual-first", defaults={"name": "Annual first"})
    if created:
        ordered = sorted(plans, key=lambda p: p.interval != "year")
        for position, plan in enumerate(ordered):
            OfferingPackage.objects.create(offering=annual, key=plan.code, position=position, plan=plan)
    OfferingCountry.objects.get_or_create(country="DE", defaults={"offering": annual})
    experiment, created = Experiment.objects.get_or_create(
        key="bench-paywall", defaults={"name": "Bench paywall", "salt": "bench"}
    )
    if created:
        ExperimentArm.objects.create(experiment=experiment, key="control", weight=1, paywall=default)
        ExperimentArm.objects.create(experiment=experiment, key="annual-first", weight=1, paywall=annual)
        experiment_start(actor=System("bench"), experiment_id=experiment.pk)


def _path(platform: str, country: str, external_id: str) -> str:
    return f"/api/v1/offerings?platform={platform}&country={country}&customer={external_id}"


def run(args) -> dict:
    from django.db import connections

    from bench.lanes import cache_clear
    from monetization.services.api_keys import api_key_create

    load_at_start = os.getloadavg()
    quick = getattr(args, "quick", False)
    count = 10_000 if quick else 100_000
    duration = 8.0 if quick else 24.0
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "4"))
    data = seed(count)
    pks = data.pop("pks")
    offerings_seed()
    full_key, _ = api_key_create(name="bench-offerings", scopes=["catalog:read"])
    cache_clear()
    connections.close_all()  # the client processes fork from here

    rng = random.Random(13)
    working = rng.sample(range(count), min(count, 2_000 if quick else 5_000))
    chosen = set(working)
    cold = [i for i in range(count) if i not in chosen]
    places = [("ios", "US"), ("android", "US"), ("web", "US"), ("ios", "DE")]
    hit_paths = [_path(*places[n % len(places)], f"{PREFIX}{i:09d}") for n, i in enumerate(working)]
    miss_paths = [_path("ios", "US", f"{PREFIX}{i:09d}") for i in rng.sample(cold, min(len(cold), 5_000))]
    bare_paths = [f"/bench/bare/{pk}" for pk in rng.choices(pks, k=20_000)]

    port = _free_port()
    server = start_server(port)
    try:
        status, body = _request(port, hit_paths[0], full_key)
        assert status == 200, body[:500]
        # Prime: each working customer's first call records the exposure and caches arm and body.
        prime = load(port, full_key, hit_paths, duration=300, concurrency=concurrency, max_requests=len(hit_paths))
        connections.close_all()
        load(port, full_key, bare_paths[:2000], duration=2, concurrency=concurrency)  # warm-up
        scenarios = {"offerings": hit_paths, "bare": bare_paths}
        turns: dict[str, list[dict]] = {name: [] for name in scenarios}
        for _ in range(ROUNDS):
            for name, paths in scenarios.items():
                turns[name].append(load(port, full_key, paths, duration=duration / ROUNDS, concurrency=concurrency))
        miss = load(port, full_key, miss_paths, duration=min(duration, 5.0), concurrency=concurrency)
    finally:
        server.terminate()
        server.wait(timeout=30)
    figures = {name: _combined(rounds) for name, rounds in turns.items()}
    per_round = [
        round(o["req_per_s"] / b["req_per_s"], 2)
        for o, b in zip(turns["offerings"], turns["bare"], strict=True)
        if b.get("req_per_s")
    ]
    ratio = round(figures["offerings"]["req_per_s"] / figures["bare"]["req_per_s"], 2)
    return {
        **data,
        "seed_seconds": round(data["seed_seconds"], 1),
        "concurrency": concurrency,
        "duration_s": duration,
        "working_set": len(hit_paths),
        "prime": _public(prime),
        **figures,
        "offerings_miss": _public(miss),
        "rounds_offerings_req_per_s": [t["req_per_s"] for t in turns["offerings"]],
        "rounds_bare_req_per_s": [t["req_per_s"] for t in turns["bare"]],
        "ratio_offerings_over_bare": {"all_rounds": ratio, "per_round": per_round},
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "target": f"offerings req/s >= {TARGET}x bare",
        "target_met": ratio >= TARGET,
    }
