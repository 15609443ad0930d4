"""Staff API bad input: multipart bodies, non-numeric filters and ids, unknown filter values, wrong
methods. Each answer is a 4xx (or JSON 5xx) with a machine-readable code; nothing changes. And
idempotency compares parsed parameters, per caller, for the key's lifetime."""

import datetime
import json

import pytest
from rest_framework.test import APIClient

from monetization import clock
from monetization.models import IdempotencyKey, Refund
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff  # noqa: F401

pytestmark = pytest.mark.django_db

BASE = "/api/v1/staff"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def body_for(payment, amount="10.00") -> dict:
    return {"payment_id": payment.pk, "amount": amount, "reason_code": "goodwill", "note": "n"}


@pytest.mark.parametrize("action", ["", "/approve", "/reject", "/retry"])
def test_multipart_body_with_idempotency_key_is_not_a_500(fake_providers, make_payment, make_staff, action):
    user = make_staff(superuser=True)
    payment = make_payment(amount="50")
    url = f"{BASE}/refunds" if not action else f"{BASE}/refunds/{Refund.objects.count() + 999}{action}"
    data = body_for(payment) if not action else {"reason": "r"}
    response = client_for(user).post(url, data=data, format="multipart", HTTP_IDEMPOTENCY_KEY="m-1")
    assert response.status_code < 500, response.content
    assert response["Content-Type"].startswith("application/json")
    if not action:
        assert response.status_code == 201
        again = client_for(user).post(url, data=data, format="multipart", HTTP_IDEMPOTENCY_KEY="m-1")
        assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
        assert Refund.objects.count() == 1
    else:
        assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "query",
    ["customer=abc", "payment=1.5", "payment=-1", "customer=99999999999999999999999", "status=AAA"],
)
def test_refund_filters_are_validated(make_staff, query):
    response = client_for(make_staff("Finance")).get(f"{BASE}/refunds?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"


def test_valid_refund_filters_filter(fake_providers, make_payment, make_staff):
    client = client_for(make_staff("Support"))
    payment = make_payment(amount="50")
    client.post(f"{BASE}/refunds", data=body_for(payment), format="json", HTTP_IDEMPOTENCY_KEY="f-1")
    assert [r["payment"] for r in client.get(f"{BASE}/refunds?payment={payment.pk}").json()["results"]] == [payment.pk]
    assert client.get(f"{BASE}/refunds?payment={payment.pk + 1}").json()["results"] == []
    assert len(client.get(f"{BASE}/refunds?status=succeeded&customer={payment.customer_id}").json()["results"]) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/refunds/abc/approve",
        "/refunds/1x/retry",
        "/grants/abc/revoke",
        "/subscriptions/abc/cancel",
        "/audit-events/abc",
        "/no-such-endpoint",
    ],
)
def test_non_numeric_ids_and_unknown_paths_are_json_404(make_staff, path):
    for client in (client_for(make_staff(superuser=True)), APIClient()):
        for method in ("get", "post"):
            response = getattr(client, method)(BASE + path)
            assert response.status_code == 404, (method, path)
            assert response["Content-Type"] == "application/json"
            assert response.json()["code"] == "not_found"


def test_wrong_method_is_json_405_with_allow(make_staff):
    client = client_for(make_staff(superuser=True))
    response = client.get("/api/v1/webhooks/stripe")  # a plain Django view (require_POST)
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
    assert "POST" in response["Allow"]
    response = client.delete(f"{BASE}/refunds")  # a DRF view
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


def test_the_404_handler_answers_json_under_api_only(rf):
    from monetization.views import not_found

    assert json.loads(not_found(rf.get("/api/v1/x")).content)["code"] == "not_found"
    assert not_found(rf.get("/admin/x"))["Content-Type"].startswith("text/html")


# --- idempotency: parsed parameters, per caller, refusals replayed, 24 hours ---------------------------


def test_same_json_in_another_key_order_is_the_same_request(fake_providers, make_payment, make_staff):
    client = client_for(make_staff("Support"))
    payment = make_payment(amount="50")
    first = json.dumps(body_for(payment))
    reordered = json.dumps(dict(reversed(list(body_for(payment).items()))), indent=2)
    assert first != reordered
    a = client.post(f"{BASE}/refunds", data=first, content_type="application/json", HTTP_IDEMPOTENCY_KEY="o-1")
    b = client.post(f"{BASE}/refunds", data=reordered, content_type="application/json", HTTP_IDEMPOTENCY_KEY="o-1")
    assert (a.status_code, b.status_code) == (201, 201)
    assert b["Idempotent-Replayed"] == "true" and a.json() == b.json()
    # The same fields as a form are the same parameters too; a different amount is another request.
    changed = client.post(f"{BASE}/refunds", data=body_for(payment, "11.00"), format="json", HTTP_IDEMPOTENCY_KEY="o-1")
    assert changed.status_code == 422 and changed.json()["code"] == "idempotency_key_reused"
    assert Refund.objects.count() == 1


def test_a_refusal_is_replayed_per_caller_only(fake_providers, make_payment, make_staff):
    payment = make_payment(amount="50")
    first, second = client_for(make_staff("Support")), client_for(make_staff("Support"))
    bad = first.post(f"{BASE}/refunds", data=body_for(payment, "60.00"), format="json", HTTP_IDEMPOTENCY_KEY="r-1")
    assert bad.status_code == 400
    replay = first.post(f"{BASE}/refunds", data=body_for(payment, "60.00"), format="json", HTTP_IDEMPOTENCY_KEY="r-1")
    assert (replay.status_code, replay["Idempotent-Replayed"]) == (400, "true")
    # Another staff member's key of the same name is theirs: their request runs.
    other = second.post(f"{BASE}/refunds", data=body_for(payment), format="json", HTTP_IDEMPOTENCY_KEY="r-1")
    assert other.status_code == 201 and "Idempotent-Replayed" not in other


def test_an_answer_is_replayed_for_24_hours_then_the_key_is_free(fake_providers, make_payment, make_staff, settings):
    settings.IDEMPOTENCY_KEY_TTL = datetime.timedelta(hours=24)
    client = client_for(make_staff("Support"))
    payment = make_payment(amount="50")
    url = f"{BASE}/refunds"
    assert client.post(url, data=body_for(payment), format="json", HTTP_IDEMPOTENCY_KEY="t-1").status_code == 201
    IdempotencyKey.objects.filter(key="t-1").update(created_at=clock.now() - datetime.timedelta(hours=23, minutes=59))
    replay = client.post(url, data=body_for(payment), format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    assert replay["Idempotent-Replayed"] == "true" and Refund.objects.count() == 1
    IdempotencyKey.objects.filter(key="t-1").update(created_at=clock.now() - datetime.timedelta(hours=24, minutes=1))
    fresh = client.post(url, data=body_for(payment), format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh
    assert Refund.objects.count() == 2 and IdempotencyKey.objects.filter(key="t-1").count() == 1
