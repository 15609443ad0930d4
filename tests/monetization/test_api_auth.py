"""Client-app authentication on the API: 401/403 with a stable code, and nothing leaks."""

import time

import pytest
from django.core.cache import cache

from monetization.api.authentication import api_key_cache_key
from monetization.services.api_keys import api_key_create, api_key_revoke
from subscriptions.services.grants import grant_create
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import EntitlementFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers/{}/entitlements"


@pytest.fixture
def customer():
    customer = CustomerFactory(external_id="1500000000000000001")
    grant_create(customer=customer, entitlement=EntitlementFactory(key="ad_free"), reason="goodwill", granted_by=None)
    return customer


def _assert_no_leak(response, *secrets):
    text = response.content.decode()
    assert "ad_free" not in text and '"entitlements":' not in text
    for secret in secrets:
        assert secret not in text


def test_no_key_is_401_not_authenticated(api_client, customer):
    response = api_client.get(URL.format(customer.external_id))
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"
    _assert_no_leak(response)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer bo_000000000000_notarealsecret",  # unknown prefix
        "Bearer nonsense",  # not our format
        "Bearer bo_onlytwo",
        "Bearer a b",  # malformed header
        "Bearer",
    ],
)
def test_bad_or_malformed_key_is_401_invalid(api_client, customer, header):
    response = api_client.get(URL.format(customer.external_id), HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["code"] in {"api_key_invalid", "not_authenticated"}
    _assert_no_leak(response)


def test_wrong_secret_for_a_real_prefix_is_401_and_leaks_nothing(api_client, customer):
    full, key = api_key_create(name="ios", scopes=["entitlements:read"])
    forged = f"bo_{key.prefix}_{'x' * 43}"
    response = api_client.get(URL.format(customer.external_id), HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_invalid"
    _assert_no_leak(response, key.key_hash, key.name, full)


def test_valid_key_sees_entitlements(api_client, customer):
    full, _ = api_key_create(name="ios", scopes=["entitlements:read"])
    response = api_client.get(URL.format(customer.external_id), HTTP_AUTHORIZATION=f"Bearer {full}")
    assert response.status_code == 200
    assert [e["key"] for e in response.json()["entitlements"]] == ["ad_free"]


def test_revoked_key_is_refused_even_when_cached(api_client, customer):
    full, key = api_key_create(name="ios", scopes=["entitlements:read"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {full}"}
    assert api_client.get(URL.format(customer.external_id), **auth).status_code == 200
    assert cache.get(api_key_cache_key(key.prefix)) is not None  # the key row is cached now

    api_key_revoke(key=key, revoked_by=None, reason="app retired")

    response = api_client.get(URL.format(customer.external_id), **auth)
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_revoked"
    _assert_no_leak(response, key.key_hash, full)


def test_wrong_scope_is_403_scope_missing(api_client, customer):
    full, key = api_key_create(name="web", scopes=["catalog:read"])
    response = api_client.get(URL.format(customer.external_id), HTTP_AUTHORIZATION=f"Bearer {full}")
    assert response.status_code == 403
    assert response.json()["code"] == "api_key_scope_missing"
    _assert_no_leak(response, key.key_hash, full)


def test_unknown_customer_is_404_with_code(client_with_scopes):
    response = client_with_scopes("entitlements:read").get(URL.format("999"))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_sessions_staff_or_not_never_pass_a_client_scope(client, customer, django_user_model):
    user = django_user_model.objects.create_user("carol", password="pw-long-enough-1", is_staff=False)
    client.force_login(user)
    assert client.get(URL.format(customer.external_id)).status_code == 403
    user.is_staff = user.is_superuser = True
    user.save()
    assert client.get(URL.format(customer.external_id)).status_code == 403


def test_entitlements_query_count_hit_zero_miss_bounded(client_with_scopes, customer, django_assert_max_num_queries):
    client = client_with_scopes("entitlements:read")
    client.get(URL.format("warm-the-key-cache"))
    with django_assert_max_num_queries(4):  # miss: customer id, subscriptions, grants (+ product keys)
        response = client.get(URL.format(customer.external_id))
    assert response.status_code == 200
    with django_assert_max_num_queries(0):  # hit: key and entitlements from the cache
        again = client.get(URL.format(customer.external_id))
    assert again.content == response.content


def test_throttling_is_on_per_key(client_with_scopes, customer, settings):
    from monetization.api.throttling import ClientThrottle

    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "client": "3/min"}
    old = ClientThrottle.THROTTLE_RATES
    ClientThrottle.THROTTLE_RATES = rates
    try:
        client = client_with_scopes("entitlements:read")
        codes = [client.get(URL.format(customer.external_id)).status_code for _ in range(4)]
    finally:
        ClientThrottle.THROTTLE_RATES = old
    assert codes == [200, 200, 200, 429]


def test_throttle_counter_is_one_key_with_an_expiry(client_with_scopes, customer):
    from django.core.cache import caches

    from monetization.cache import RedisCache

    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        pytest.skip("needs the Redis cache")
    client = client_with_scopes("entitlements:read")
    # The window is the wall-clock second: start early in one so three requests fit in it
    # even on a loaded machine (CI once crossed a second boundary here).
    time.sleep(1 - time.time() % 1)
    for _ in range(3):
        assert client.get(URL.format(customer.external_id)).status_code == 200
    redis = backend._cache.get_client(write=True)
    keys = list(redis.keys("*throttle_client_key:*"))
    # One counter per window: three hits in one second make one key; a slow run may
    # still span two windows, never more, and every hit is counted exactly once.
    assert 1 <= len(keys) <= 2
    assert sum(int(redis.get(key)) for key in keys) == 3
    for key in keys:
        assert 0 < redis.ttl(key) <= 2  # a one-second window (2,000/s), and its second of grace


@pytest.mark.django_db(transaction=True)
def test_revocation_wins_over_a_stale_read_cached_after_it(api_client):
    """Interleaving: a request reads the key row (not revoked), the revocation commits,
    then that request caches what it read. The key must still be refused."""
    from monetization.api.authentication import api_key_cache_row
    from monetization.models import ApiKey

    customer = CustomerFactory()
    full, key = api_key_create(name="ios", scopes=["entitlements:read"])
    cache.delete(api_key_cache_key(key.prefix))
    stale = api_key_cache_row(ApiKey.objects.get(pk=key.pk))  # read before the revocation commits

    api_key_revoke(key=key, revoked_by=None, reason="leaked")  # commits: on_commit callbacks run
    cache.add(api_key_cache_key(key.prefix), stale, 60)  # what the slow request then does

    response = api_client.get(URL.format(customer.external_id), HTTP_AUTHORIZATION=f"Bearer {full}")
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_revoked"


@pytest.mark.django_db(transaction=True)
def test_new_key_is_cached_on_commit_and_works_at_once(api_client):
    customer = CustomerFactory()
    full, key = api_key_create(name="ios", scopes=["entitlements:read"])
    assert cache.get(api_key_cache_key(key.prefix))["revoked"] is False
    response = api_client.get(URL.format(customer.external_id), HTTP_AUTHORIZATION=f"Bearer {full}")
    assert response.status_code == 200
