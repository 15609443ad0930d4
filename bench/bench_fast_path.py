"""The entitlement fast path in process: what one cache hit costs, one Redis round trip against two.

HTTP benchmarks on a shared machine measure mostly the scheduler; this one calls the WSGI
fast path (subscriptions/api/fast_path.py) directly, as gunicorn's worker does, for a hit of a
customer whose key row and entitlements are cached. Two ways, interleaved in rounds on the
same data, so the machine's load weighs on both alike:

- ``one_trip``: the fast path as it runs (the key's id known from an earlier hit: key row,
  entitlements and the throttle count in one Lua script);
- ``two_trips``: the key's id forgotten before each request, so it reads the row and body
  (``MGET``), then counts (a pipeline): the path before the script.

Reports wall and CPU microseconds per hit and the Redis round trips per hit of each.
Target (issue 18): one round trip per hit.
"""

from __future__ import annotations

import time
from wsgiref.util import setup_testing_defaults

ROUNDS = 10


def _call(app, environ: dict) -> str:
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = status

    body = app(dict(environ), start_response)
    b"".join(body)
    getattr(body, "close", lambda: None)()
    return seen["status"]


def run(args) -> dict:
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from redis.connection import Connection

    from monetization.api.throttling import ClientThrottle
    from monetization.models import Customer
    from monetization.services.api_keys import api_key_create
    from subscriptions.api.fast_path import EntitlementsFastPath

    call_command("migrate", verbosity=0)
    per_round = 200 if getattr(args, "quick", False) else 1000
    customer, _ = Customer.objects.get_or_create(external_id="bench-fast-path", defaults={"handle": "fastpath"})
    full_key, _ = api_key_create(name="bench-fast-path", scopes=["entitlements:read"])

    class Recording:
        calls = 0

        def __call__(self, environ, start_response):
            Recording.calls += 1
            return WSGIHandler()(environ, start_response)

    # Throttling stays on (its counters are part of the cost) with ceilings the run never reaches.
    ClientThrottle.THROTTLE_RATES = dict.fromkeys(ClientThrottle.THROTTLE_RATES, "100000000/min")
    app = EntitlementsFastPath(Recording())
    if not app.enabled:
        raise RuntimeError("the fast path is off under these settings (a Redis cache is needed)")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/api/v1/customers/{customer.external_id}/entitlements",
        "HTTP_AUTHORIZATION": f"Bearer {full_key}",
    }
    setup_testing_defaults(environ)
    for _ in range(3):  # a miss (Django caches the body), then the first hit learns the key's id
        assert _call(app, environ) == "200 OK"

    trips = {"n": 0}
    send = Connection.send_packed_command

    def counted(connection, *a, **kw):
        trips["n"] += 1
        return send(connection, *a, **kw)

    Connection.send_packed_command = counted
    totals = {mode: {"wall": 0.0, "cpu": 0.0, "trips": 0, "hits": 0} for mode in ("one_trip", "two_trips")}
    ratios = []
    django_calls = Recording.calls
    try:
        for _ in range(ROUNDS):
            walls = {}
            for mode, total in totals.items():
                forget = mode == "two_trips"
                trips["n"] = 0
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(per_round):
                    if forget:
                        app.key_ids.clear()
                    _call(app, environ)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                total["wall"] += wall
                total["cpu"] += cpu
                total["trips"] += trips["n"]
                total["hits"] += per_round
                walls[mode] = wall
            ratios.append(round(walls["two_trips"] / walls["one_trip"], 2))
    finally:
        Connection.send_packed_command = send
    figures = {
        mode: {
            "hits": t["hits"],
            "wall_us_per_hit": round(t["wall"] * 1e6 / t["hits"], 1),
            "cpu_us_per_hit": round(t["cpu"] * 1e6 / t["hits"], 1),
            "redis_round_trips_per_hit": round(t["trips"] / t["hits"], 2),
        }
        for mode, t in totals.items()
    }
    one, two = figures["one_trip"], figures["two_trips"]
    return {
        **figures,
        "served_by_django": Recording.calls - django_calls,  # 0: every request was a fast-path hit
        "wall_two_over_one": round(two["wall_us_per_hit"] / one["wall_us_per_hit"], 2),
        "wall_two_over_one_per_round": ratios,
        "cpu_two_over_one": round(two["cpu_us_per_hit"] / one["cpu_us_per_hit"], 2),
        "target": "one Redis round trip per hit",
        "target_met": one["redis_round_trips_per_hit"] == 1.0,
    }
