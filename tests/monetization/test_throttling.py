"""Throttling that fits clients: one app key carries all its users; one user cannot spend it all."""

import pytest
from django.test import RequestFactory

from monetization.api import throttling
from monetization.api.authentication import ApiClient
from monetization.api.throttling import ClientThrottle
from tests.monetization.factories import CustomerFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/customers/{}/entitlements"


class FakeClock:
    def __init__(self, start: float, step: float):
        self.now, self.step = start, step

    def time(self) -> float:
        self.now += self.step
        return self.now


def _run(monkeypatch, *, requests: int, per_second: int, customers: list[str], ip=None) -> dict[str, int]:
    """Send ``requests`` through one key at ``per_second`` (simulated), customers in turn, each from
    its own address unless ``ip`` names one for all: the 429s per customer."""
    clock = FakeClock(1_000_000.0, 1 / per_second)
    monkeypatch.setattr(throttling, "_now", clock.time)
    app = ApiClient(key_id=424242, name="app", scopes=frozenset({"entitlements:read"}))
    factory = RequestFactory()
    throttled = dict.fromkeys(customers, 0)
    for i in range(requests):
        customer = customers[i % len(customers)]
        address = ip or f"10.0.{sum(customer.encode()) % 250}.{len(customer)}"
        request = factory.get("/", HTTP_X_ACTING_CUSTOMER=customer, REMOTE_ADDR=address)
        request.user = app
        if not ClientThrottle().allow_request(request, None):
            throttled[customer] += 1
    return throttled


def test_the_key_ceiling_is_sized_for_a_production_app():
    num, duration = ClientThrottle().parse_rate(ClientThrottle.THROTTLE_RATES["client"])
    assert num / duration >= 2000


def test_fifty_customers_through_one_key_are_not_throttled(monkeypatch):
    # 800 requests/s for 12.5 s: the old per-key 6,000/min turned away 40% of them.
    customers = [f"user-{n}" for n in range(50)]
    throttled = _run(monkeypatch, requests=10_000, per_second=800, customers=customers)
    assert sum(throttled.values()) == 0


def test_one_customer_hammering_is_throttled_and_the_others_are_not(monkeypatch):
    hammer = [f"user-{n}" for n in range(10)] + ["hammer"] * 40  # "hammer" sends 400 of 500/s
    throttled = _run(monkeypatch, requests=3_000, per_second=500, customers=hammer)
    assert throttled["hammer"] > 0.9 * 2_400
    assert sum(v for k, v in throttled.items() if k != "hammer") == 0


def test_one_address_is_throttled_below_the_key(monkeypatch):
    customers = [f"user-{n}" for n in range(200)]
    throttled = _run(monkeypatch, requests=3_000, per_second=1_500, customers=customers, ip="203.0.113.9")
    assert sum(throttled.values()) > 0  # 1,500/s from one address is over client_ip (500/s)


def test_over_http_the_hammering_customer_gets_429_and_another_gets_200(client_with_scopes, monkeypatch):
    monkeypatch.setattr(
        ClientThrottle, "THROTTLE_RATES", {"client": "1000/day", "customer": "3/day", "client_ip": "500/day"}
    )
    app = client_with_scopes("entitlements:read")
    hammer, other = CustomerFactory(), CustomerFactory()
    codes = [app.get(URL.format(hammer.external_id)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = app.get(URL.format(hammer.external_id))
    assert response.json()["code"] == "throttled" and int(response["Retry-After"]) > 0
    assert app.get(URL.format(other.external_id)).status_code == 200
