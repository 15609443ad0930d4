import os
import subprocess

import pytest

from monetization.providers.base import reset_providers
from subscriptions.models import Plan, Platform
from subscriptions.services.provider_sync import _SKU_CACHE
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, SkuFactory
from tests.webhooks.conftest import apple_pki, catalog  # noqa: F401  (shared fixtures)
from tests.webhooks.support import STRIPE_SECRET


@pytest.fixture(autouse=True)
def no_clock_moves(monkeypatch):
    """The simulators' books say where a provider's events leave a subscription, not where the clock takes it
    afterwards: the workers run the lifecycle sweep once a month unless told otherwise (a soak runs past its
    5 minutes, and the Stripe histories end around today; the sweep's moves are tested in tests/subscriptions)."""
    monkeypatch.setenv("SUBSCRIPTION_SWEEP_INTERVAL", os.environ.get("SUBSCRIPTION_SWEEP_INTERVAL", str(30 * 86400)))


@pytest.fixture(autouse=True)
def real_adapters(settings):
    """The live server verifies signatures with the real adapters, keys made in the tests."""
    settings.PAYMENT_PROVIDERS = {
        "stripe": "monetization.providers.stripe.StripeProvider",
        "app_store": "monetization.providers.app_store.AppStoreProvider",
        "google_play": "monetization.providers.google_play.GooglePlayProvider",
    }
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_SECRET
    reset_providers()
    _SKU_CACHE.clear()
    yield settings
    reset_providers()
    _SKU_CACHE.clear()


@pytest.fixture
def store_catalog(catalog):
    """The shared catalog with the store side of a subscription group: Premium Plus (a higher tier that grants
    more) and Premium yearly (the same tier, another duration) sold on the App Store and Google Play, so the
    simulators can upgrade, downgrade and crossgrade."""
    plus = Plan.objects.get(code="premium-plus-monthly")
    plus.product.entitlements.add(*catalog.product.entitlements.all(), EntitlementFactory(key="priority_support"))
    SkuFactory(plan=plus, platform=Platform.IOS, store_product_id="com.example.premium.plus.monthly")
    SkuFactory(plan=plus, platform=Platform.ANDROID, store_product_id="premium_plus", base_plan_id="monthly")
    yearly = PlanFactory(product=catalog.product, code="premium-yearly", interval=Plan.Interval.YEAR)
    SkuFactory(plan=yearly, platform=Platform.IOS, store_product_id="com.example.premium.yearly")
    _SKU_CACHE.clear()
    return catalog


@pytest.fixture
def soak_workers(celery_worker_factory):
    """``SOAK_WORKERS`` workers in all (default 1, as CI runs): a soak spreads applying over several, as
    production does (the first one runs beat); each spends most of its time waiting for the database.

    Each keeps its database connection for the run, as production's do (``DB_CONN_MAX_AGE``, 60 s there), not
    one per task as other worker tests do: a soak's events arrive a few at a time, each arrival a task, and
    opening a connection per task cost the workers more than applying the events."""
    keep = {"DB_CONN_MAX_AGE": os.environ.get("SOAK_WORKER_CONN_MAX_AGE", "600")}
    first = celery_worker_factory(**keep).start()
    for _ in range(int(os.environ.get("SOAK_WORKERS", "1")) - 1):
        celery_worker_factory(beat=False, **keep).start()
    return first.proc


# The settings a test sets on this process that the server must run with too (it reads them from its environment).
_SERVER_SETTINGS = (
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_WEBHOOK_TOLERANCE",
    "APP_STORE_ROOT_CERTS",
    "APP_STORE_BUNDLE_ID",
    "APP_STORE_APP_APPLE_ID",
    "APP_STORE_ENVIRONMENT",
    "GOOGLE_PLAY_PACKAGE_NAME",
    "GOOGLE_PLAY_PUSH_TOKEN",
)


@pytest.fixture
def soak_server(celery_worker_factory, settings, request):
    """``soak_server()``: the base URL the deliveries go to, a real gunicorn (bench/bench_webhooks.py's, sync
    workers) on the test database and the test broker, with the settings this test has set by then.

    Not pytest-django's ``live_server`` (Django's threaded dev server, in this process): it shares the GIL with
    the senders and comparisons, opens a thread and a database connection per request, and served the soak at
    about 45 requests/s. ``SOAK_SERVER=live`` still uses it (to compare)."""
    from django.db import connection

    from bench.bench_webhooks import _free_port, _gunicorn
    from tests.celery_worker import BROKER_URL, worker_env
    from tests.processes import database_url

    servers = []

    def start() -> str:
        if os.environ.get("SOAK_SERVER") == "live":
            return request.getfixturevalue("live_server").url
        marked = marker.kwargs if (marker := request.node.get_closest_marker("worker_env")) else {}
        env = worker_env(
            database_url(connection.settings_dict),
            BROKER_URL,
            **{
                **marked,
                **{name: str(getattr(settings, name) or "") for name in _SERVER_SETTINGS},
                **{f"PAYMENT_PROVIDER_{p.upper()}": path for p, path in settings.PAYMENT_PROVIDERS.items()},
                # A connection per gunicorn worker for the run, not one per request; the soak is not about
                # throttling.
                "DB_CONN_MAX_AGE": "600",
                "API_THROTTLE_CUSTOMER_RATE": "100000000/min",
                "API_THROTTLE_IP_RATE": "100000000/min",
                "LOG_LEVEL": "WARNING",
            },
        )
        port = _free_port()
        servers.append(_gunicorn(env, port))
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:  # before the test database is flushed or dropped: its connections go with it
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
