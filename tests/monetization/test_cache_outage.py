"""Degrade to correct, never to open: a private Redis (port 6422) stopped and started under the API.

While Redis is down, entitlements and API keys are answered from PostgreSQL and committed staff
actions answer 2xx/3xx, never 500. A revocation committed during the outage is enforced at once
from the database and, once Redis is back with the entries it held before (saved on shutdown),
those stale entries are never served: the invalidation rows written in the revoking transaction
are flushed before a cached answer is trusted again.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import socket
import subprocess
import time

import pytest
import redis
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction

from monetization.models import CacheInvalidation
from monetization.services import cache_invalidation
from monetization.services.api_keys import api_key_cache_key
from monetization.tasks_cache import cache_invalidations_flush_task
from subscriptions.entitlements import entitlements_cache_key
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, ProductFactory, SubscriptionFactory
from tests.verified_orgs.factories import compliance_user

pytestmark = pytest.mark.django_db(transaction=True)
PORT = 6422


class PrivateRedis:
    def __init__(self, directory):
        self.directory = directory
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(PORT),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                if redis.Redis(port=PORT).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self):
        """Shut down, saving what it holds (as a production Redis with persistence keeps its entries)."""
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(port=PORT).shutdown(save=True)
        self.process.wait(10)
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", PORT)) != 0

    def raw_exists(self, key: str) -> bool:
        return bool(redis.Redis(port=PORT).exists(cache.make_key(key)))

    def raw_entitlement_keys(self, external_id: str) -> list[str] | None:
        """The entitlement keys cached for a customer, read straight from Redis, or None when nothing is."""
        value = redis.Redis(port=PORT).get(cache.make_key(entitlements_cache_key(external_id)))
        return None if value is None else sorted(e["key"] for e in json.loads(pickle.loads(value))["entitlements"])


@pytest.fixture
def private_redis(settings, tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    settings.CACHES = {
        "default": {
            "BACKEND": "monetization.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{PORT}/0",
            "KEY_PREFIX": "outage",
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.5},
        }
    }
    cache_invalidation._next_check = 0.0
    yield server
    if server.process.poll() is not None:
        server.start()
    server.stop()


@pytest.fixture
def premium_sub():
    product = ProductFactory(
        code="premium", entitlements=[EntitlementFactory(key="verified_badge"), EntitlementFactory(key="edit_post")]
    )
    return SubscriptionFactory(plan=PlanFactory(product=product, code="premium-monthly"))


def _keys(client, external_id):
    r = client.get(f"/api/v1/customers/{external_id}/entitlements")
    assert r.status_code == 200, r.content
    return sorted(e["key"] for e in r.json()["entitlements"])


def test_revoke_during_outage_is_enforced_during_and_after(private_redis, premium_sub, client_with_scopes, client):
    app = client_with_scopes("entitlements:read")
    external_id = premium_sub.customer.external_id
    assert _keys(app, external_id) == ["edit_post", "verified_badge"]
    assert private_redis.raw_exists(entitlements_cache_key(external_id))

    private_redis.stop()
    assert _keys(app, external_id) == ["edit_post", "verified_badge"]  # from PostgreSQL
    assert app.get("/api/v1/customers/nobody/entitlements").status_code == 404
    client.force_login(compliance_user())
    r = client.post(
        f"/api/v1/staff/subscriptions/{premium_sub.pk}/revoke", {"reason": "fraud"}, content_type="application/json"
    )
    assert r.status_code == 200, r.content
    assert _keys(app, external_id) == []  # the revocation holds during the outage
    assert CacheInvalidation.objects.count() == 1

    private_redis.start()
    assert private_redis.raw_exists(entitlements_cache_key(external_id))  # the stale entry came back
    assert _keys(app, external_id) == []  # the first request after the outage flushes it
    # The stale entry is gone: nothing is cached, or (when Redis took longer than the backend's second of
    # backoff to come back, as on a loaded machine) the answer that request just gave.
    assert private_redis.raw_entitlement_keys(external_id) in (None, [])
    assert not CacheInvalidation.objects.exists()


def test_a_process_that_checked_recently_serves_stale_until_its_interval_ends(
    private_redis, premium_sub, client_with_scopes
):
    """The bound once Redis is back: CACHE_INVALIDATION_CHECK_INTERVAL (1 s) for a process that
    saw no error, or the 5 s beat task, whichever comes first."""
    app = client_with_scopes("entitlements:read")
    external_id = premium_sub.customer.external_id
    assert _keys(app, external_id) == ["edit_post", "verified_badge"]
    private_redis.stop()
    from subscriptions.services.lifecycle import Cause, subscription_change_state

    subscription_change_state(subscription=premium_sub, transition="revoke", cause=Cause.task("test"))
    private_redis.start()
    cache_invalidation._next_check = time.monotonic() + 1000  # as if it had just checked
    assert _keys(app, external_id) == ["edit_post", "verified_badge"]  # stale: the interval is the bound
    assert cache_invalidations_flush_task() == 1  # the beat task, or the next check, flushes it
    assert _keys(app, external_id) == []


def test_api_key_revoke_during_outage_commits_and_holds(private_redis, client_with_scopes, client, premium_sub):
    app = client_with_scopes("entitlements:read")
    external_id = premium_sub.customer.external_id
    assert app.get(f"/api/v1/customers/{external_id}/entitlements").status_code == 200
    from monetization.models import ApiKey

    key = ApiKey.objects.get()
    assert private_redis.raw_exists(api_key_cache_key(key.prefix))

    private_redis.stop()
    admin = get_user_model().objects.create_superuser("root", password="pw-long-enough-1")
    client.force_login(admin)
    r = client.post(
        "/admin/monetization/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]}, follow=False
    )
    assert r.status_code == 302, r.content[:500]
    key.refresh_from_db()
    assert key.revoked_at is not None
    r = app.get(f"/api/v1/customers/{external_id}/entitlements")
    assert (r.status_code, r.json()["code"]) == (401, "api_key_revoked")

    private_redis.start()
    assert private_redis.raw_exists(api_key_cache_key(key.prefix))  # the stale, unrevoked row came back
    r = app.get(f"/api/v1/customers/{external_id}/entitlements")
    assert (r.status_code, r.json()["code"]) == (401, "api_key_revoked")


def test_many_keys_invalidated_during_an_outage_take_one_row_and_are_all_flushed(private_redis):
    keys = [entitlements_cache_key(f"cust-{n}") for n in range(2500)]
    cache.set_many(dict.fromkeys(keys, b"{}"))
    private_redis.stop()

    with transaction.atomic():
        cache_invalidation.cache_invalidate(keys)
    assert CacheInvalidation.objects.count() == 1  # one row, however many keys
    assert sorted(CacheInvalidation.objects.get().keys) == sorted(keys)
    assert cache_invalidation.cache_trusted() is False

    private_redis.start()
    assert all(private_redis.raw_exists(k) for k in (keys[0], keys[-1]))  # the stale entries came back
    assert cache_invalidation.cache_trusted() is True  # flushed, in slices
    assert not any(private_redis.raw_exists(k) for k in keys)
    assert not CacheInvalidation.objects.exists()


def test_delete_many_forgets_exactly_the_keys_named_in_every_version():
    cache.set_many({"a": 1, "b": 2, "keep": 3})
    cache.set("a", 10, version=2)

    cache.delete_many(["a", "b", "missing"])
    cache.delete_many(["a"], version=2)
    cache.delete_many([])

    assert cache.get_many(["a", "b", "keep"]) == {"keep": 3}
    assert cache.get("a", version=2) is None
