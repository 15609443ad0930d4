"""The WSGI fast path for offerings cache hits (subscriptions/api/offerings_fast_path.py)."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler

from monetization.api.throttling import ClientThrottle
from monetization.services.api_keys import api_key_create
from subscriptions.api.offerings_fast_path import OfferingsFastPath
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.test_fast_path import PRODUCTION, Recording, RedisTrips, bearer, call
from tests.subscriptions.test_offerings import _paywall_experiment, catalog  # noqa: F401 (a fixture)

pytestmark = [
    pytest.mark.django_db(transaction=True),  # on_commit cache deletes run, as in production
    pytest.mark.skipif("Redis" not in django_settings.CACHES["default"]["BACKEND"], reason="the fast path needs Redis"),
]

PATH = "/api/v1/offerings"


@pytest.fixture
def key():
    return api_key_create(name="ios", scopes=["catalog:read"])


@pytest.fixture
def apps():
    def build():
        inner = Recording(WSGIHandler())
        return OfferingsFastPath(inner), inner, WSGIHandler()

    return build


@pytest.mark.parametrize("overrides", [{}, PRODUCTION], ids=["defaults", "production-https"])
def test_a_hit_is_answered_ahead_of_django_exactly_as_django_answers_it(
    apps, settings, catalog, key, overrides, django_assert_num_queries
):
    for name, value in overrides.items():
        setattr(settings, name, value)
    extra = {"HTTP_X_FORWARDED_PROTO": "https"} if overrides else {}
    _paywall_experiment(catalog)
    customer = CustomerFactory()
    fast, inner, django = apps()
    query = f"platform=ios&country=us&customer={customer.external_id}"
    auth = bearer(key[0])

    warm = call(fast, PATH, QUERY_STRING=query, **auth, **extra)  # a miss: Django exposes, renders, caches
    assert warm.status == "200 OK", warm.body
    assert inner.calls == 1
    with django_assert_num_queries(0):
        hit = call(fast, PATH, QUERY_STRING=query, **auth, **extra)
    assert inner.calls == 1  # Django never saw it
    reference = call(django, PATH, QUERY_STRING=query, **auth, **extra)
    assert hit.status == "200 OK" and b'"packages"' in hit.body and b"paywall-test." in hit.body
    assert hit.without_request_id() == reference.without_request_id()
    assert [name for name, _ in hit.headers] == [name for name, _ in reference.headers]


def test_a_hit_costs_one_redis_round_trip_with_its_count(apps, monkeypatch, catalog, key):
    monkeypatch.setattr(ClientThrottle, "THROTTLE_RATES", {"client": "100/day"})
    fast, inner, _ = apps()
    customer = CustomerFactory()
    query = f"platform=web&country=US&customer={customer.external_id}"
    call(fast, PATH, QUERY_STRING=query, **bearer(key[0]))  # a miss: Django
    call(fast, PATH, QUERY_STRING=query, **bearer(key[0]))  # the first hit learns the key's id
    trips = RedisTrips(monkeypatch)
    for served in range(1, 4):
        assert call(fast, PATH, QUERY_STRING=query, **bearer(key[0])).status == "200 OK"
        assert trips.count == served
    assert inner.calls == 1


@pytest.mark.parametrize(
    "query",
    [
        "platform=web&country=US&format=json",  # DRF reads format=
        "platform=web&country=US&country=DE",  # Django takes the last one
        "platform=web&country=U%53",  # encoded
        "platform=web&country=US&customer=",  # empty
        "platform=web",  # a 400 from Django
        "platform=wap&country=US",
        "platform=web&country=XX",
        "",
    ],
)
def test_any_other_query_string_goes_to_django(apps, catalog, key, query):
    fast, inner, _ = apps()
    good = "platform=web&country=US"
    call(fast, PATH, QUERY_STRING=good, **bearer(key[0]))
    call(fast, PATH, QUERY_STRING=good, **bearer(key[0]))
    assert inner.calls == 1
    call(fast, PATH, QUERY_STRING=query, **bearer(key[0]))
    assert inner.calls == 2


def test_an_edit_committed_is_never_served_stale(apps, catalog, key):
    fast, inner, _ = apps()
    query = "platform=web&country=US"
    before = call(fast, PATH, QUERY_STRING=query, **bearer(key[0]))
    assert call(fast, PATH, QUERY_STRING=query, **bearer(key[0])).body == before.body and inner.calls == 1
    catalog["default"].name = "Renamed"
    catalog["default"].save()
    after = call(fast, PATH, QUERY_STRING=query, **bearer(key[0]))
    assert inner.calls == 2 and b'"Renamed"' in after.body


def test_the_wsgi_application_serves_offerings_hits():
    from backoffice.wsgi import application

    assert isinstance(application.app, OfferingsFastPath) and application.app.enabled
