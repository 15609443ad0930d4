"""Web promo codes: the redemption limit under concurrency, expiry and eligibility, and Support's list."""

import datetime
import threading

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from monetization import clock
from monetization.models import ApiKey, AuditEvent
from monetization.roles import SUPPORT, sync_roles
from subscriptions.models import PromoCode, PromoRedemption
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory

URL = "/api/v1/promo-codes/redeem"


def _redeem(client, code, customer, **extra):
    return client.post(URL, {"code": code, "customer": customer.external_id, **extra}, format="json")


@pytest.mark.django_db
def test_redeem_records_who_redeemed_and_repeats_are_the_same_redemption(client_with_scopes):
    PromoCode.objects.create(code="welcome20", max_redemptions=5, stripe_promotion_code_id="promo_1")
    customer = CustomerFactory(country="DE")
    client = client_with_scopes("purchases:write")
    first = _redeem(client, "WELCOME20", customer)
    assert first.status_code == 201, first.content
    assert first.json()["code"] == "WELCOME20" and first.json()["country"] == "DE"
    assert first.json()["stripe_promotion_code_id"] == "promo_1"
    again = _redeem(client, "welcome20", customer)
    assert again.status_code == 200
    assert PromoCode.objects.get().redeemed == 1
    assert PromoRedemption.objects.get().customer == customer
    assert AuditEvent.objects.filter(action="promo_code.redeemed", customer=customer).count() == 1


@pytest.mark.django_db
def test_refusals_have_stable_codes_and_write_nothing(client_with_scopes):
    now = clock.now()
    PromoCode.objects.create(code="OLD", max_redemptions=5, expires_at=now - datetime.timedelta(seconds=1))
    PromoCode.objects.create(code="BR-ONLY", max_redemptions=5, countries=["br"])
    PromoCode.objects.create(code="NEW-ONLY", max_redemptions=5, first_time_only=True)
    PromoCode.objects.create(code="ONE", max_redemptions=1)
    client = client_with_scopes("purchases:write")
    customer = CustomerFactory(country="US")
    returning = SubscriptionFactory().customer
    _redeem(client, "ONE", CustomerFactory())
    cases = [
        ("OLD", customer, {}, 409, "promo_code_expired"),
        ("BR-ONLY", customer, {}, 409, "promo_code_not_eligible"),
        ("BR-ONLY", customer, {"country": "de"}, 409, "promo_code_not_eligible"),
        ("NEW-ONLY", returning, {}, 409, "promo_code_not_eligible"),
        ("ONE", customer, {}, 409, "promo_code_exhausted"),
        ("NOPE", customer, {}, 404, "promo_code_not_found"),
    ]
    for code, who, extra, status, error in cases:
        response = _redeem(client, code, who, **extra)
        assert (response.status_code, response.json()["code"]) == (status, error), code
    assert PromoRedemption.objects.count() == 1
    assert PromoCode.objects.get(code="ONE").redeemed == 1
    assert _redeem(client, "BR-ONLY", customer, country="BR").status_code == 201
    assert _redeem(client, "NEW-ONLY", customer).status_code == 201


@pytest.mark.django_db
def test_an_idempotency_key_replays_the_first_answer(client_with_scopes):
    PromoCode.objects.create(code="ONE", max_redemptions=1)
    client = client_with_scopes("purchases:write")
    customer, other = CustomerFactory(), CustomerFactory()
    first = client.post(
        URL, {"code": "ONE", "customer": customer.external_id}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    replay = client.post(
        URL, {"code": "ONE", "customer": customer.external_id}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert first.status_code == replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true" and replay.json() == first.json()
    reused = client.post(URL, {"code": "ONE", "customer": other.external_id}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"


@pytest.mark.django_db
def test_redeeming_needs_the_purchases_scope(client_with_scopes):
    PromoCode.objects.create(code="ONE", max_redemptions=1)
    response = _redeem(client_with_scopes("catalog:read"), "ONE", CustomerFactory())
    assert response.status_code == 403
    assert PromoRedemption.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_code_limited_to_100_redeems_exactly_100_under_200_concurrent_checkouts():
    PromoCode.objects.create(code="LAUNCH", max_redemptions=100)
    customers = [CustomerFactory() for _ in range(200)]
    full, prefix, key_hash = ApiKey.generate()
    ApiKey.objects.create(name="web", prefix=prefix, key_hash=key_hash, scopes=["purchases:write"])
    # 200 checkouts over 20 threads (each its own connection): enough overlap without exhausting
    # the shared server's connections.
    threads_n = 20
    barrier = threading.Barrier(threads_n)
    outcomes, lock = [], threading.Lock()

    def checkout(batch):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {full}")
        try:
            barrier.wait()
            for customer in batch:
                response = _redeem(client, "LAUNCH", customer)
                with lock:
                    outcomes.append((response.status_code, response.json().get("code")))
        finally:
            connection.close()

    threads = [threading.Thread(target=checkout, args=(customers[i::threads_n],)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 200
    assert sum(1 for status, _ in outcomes if status == 201) == 100
    assert sorted({o for o in outcomes if o[0] != 201}) == [(409, "promo_code_exhausted")]
    assert PromoCode.objects.get().redeemed == 100
    assert PromoRedemption.objects.count() == 100


@pytest.mark.django_db
def test_support_reads_who_redeemed_what_but_cannot_change_it(client, client_with_scopes):
    promo = PromoCode.objects.create(code="WELCOME20", max_redemptions=5)
    customer = CustomerFactory(external_id="1700000042")
    _redeem(client_with_scopes("purchases:write"), "WELCOME20", customer)
    sync_roles()
    agent = get_user_model().objects.create_user("support1", password="pw-long-enough-123", is_staff=True)
    agent.groups.add(Group.objects.get(name=SUPPORT))
    client.force_login(agent)
    page = client.get(reverse("admin:subscriptions_promoredemption_changelist"), {"q": "1700000042"})
    assert page.status_code == 200
    assert "WELCOME20" in page.content.decode() and "1700000042" in page.content.decode()
    edit = client.post(reverse("admin:subscriptions_promocode_change", args=[promo.pk]), {"max_redemptions": 500})
    assert edit.status_code == 403
    assert PromoCode.objects.get().max_redemptions == 5


@pytest.mark.django_db
def test_a_superuser_creating_a_code_in_the_admin_is_audited(client):
    boss = get_user_model().objects.create_superuser("boss", password="pw-long-enough-123")
    client.force_login(boss)
    response = client.post(
        reverse("admin:subscriptions_promocode_add"),
        {"code": "spring", "max_redemptions": 10, "countries": "us,de", "description": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    promo = PromoCode.objects.get()
    assert promo.code == "SPRING" and promo.countries == ["DE", "US"]
    assert AuditEvent.objects.filter(action="promo_code.created", actor=boss, object_id=str(promo.pk)).exists()
