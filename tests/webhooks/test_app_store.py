import json

import pytest
from djmoney.money import Money

from monetization.models import AuditEvent, Payment, WebhookEvent
from monetization.providers.base import UnsupportedOperation, get_provider
from subscriptions.models import Subscription

from .conftest import IOS_CUSTOMER
from .support import ApplePKI, app_store_notification, post_app_store

pytestmark = pytest.mark.django_db(transaction=True)
OTID = "2000000812345001"
T0 = 1767225605000  # ms
DAY = 86_400_000


def _sub() -> Subscription:
    return Subscription.objects.get(provider="app_store", provider_subscription_id=OTID)


def _notify(client, pki, ntype, subtype=None, *, uuid, at, tx=None, renewal=None):
    body, _ = app_store_notification(
        pki,
        notification_type=ntype,
        subtype=subtype,
        uuid=uuid,
        signed_ms=at,
        transaction_updates=tx,
        renewal_updates=renewal,
    )
    response = post_app_store(client, body)
    assert response.status_code == 200, response.content
    return response


def test_subscribed_creates_an_active_subscription_with_a_payment(client, apple_pki, catalog, customers):
    _notify(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="n-1", at=T0)
    sub = _sub()
    assert sub.state == Subscription.State.ACTIVE
    assert sub.customer.external_id == IOS_CUSTOMER  # resolved through the appAccountToken identity
    payment = Payment.objects.get(provider="app_store")
    assert payment.amount == Money("9.99", "USD") and payment.kind == Payment.Kind.INITIAL
    event = WebhookEvent.objects.get()
    assert event.event_type == "SUBSCRIBED.INITIAL_BUY" and event.subscription_ref == OTID
    assert json.loads(event.raw_body)["signedPayload"].count(".") == 2


def test_full_lifecycle(client, apple_pki, catalog, customers, client_with_scopes):
    api = client_with_scopes("entitlements:read")

    def keys():
        return api.get(f"/api/v1/customers/{IOS_CUSTOMER}/entitlements").json()["entitlements"]

    S = Subscription.State
    _notify(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="n-1", at=T0)
    assert _sub().state == S.ACTIVE and len(keys()) == 2
    renewed = {"transactionId": "2000000812345002", "purchaseDate": 1769904000000, "expiresDate": 1772323200000}
    _notify(client, apple_pki, "DID_RENEW", uuid="n-2", at=1769904005000, tx=renewed)
    assert _sub().state == S.ACTIVE and Payment.objects.filter(kind=Payment.Kind.RENEWAL).count() == 1
    grace = {"isInBillingRetryPeriod": True, "gracePeriodExpiresDate": 1772323200000 + 16 * DAY}
    _notify(
        client, apple_pki, "DID_FAIL_TO_RENEW", "GRACE_PERIOD", uuid="n-3", at=1772323300000, tx=renewed, renewal=grace
    )
    assert _sub().state == S.IN_GRACE_PERIOD and _sub().grace_end is not None
    assert len(keys()) == 2  # grace keeps access
    _notify(
        client,
        apple_pki,
        "GRACE_PERIOD_EXPIRED",
        uuid="n-4",
        at=1772323200000 + 16 * DAY + 1000,
        tx=renewed,
        renewal=grace,
    )
    assert _sub().state == S.ON_HOLD and keys() == []
    recovered = {"transactionId": "2000000812345003", "purchaseDate": 1774000000000, "expiresDate": 1776600000000}
    _notify(client, apple_pki, "DID_RENEW", "BILLING_RECOVERY", uuid="n-5", at=1774000005000, tx=recovered)
    assert _sub().state == S.ACTIVE and len(keys()) == 2
    _notify(
        client,
        apple_pki,
        "DID_CHANGE_RENEWAL_STATUS",
        "AUTO_RENEW_DISABLED",
        uuid="n-6",
        at=1774000100000,
        tx=recovered,
        renewal={"autoRenewStatus": 0},
    )
    assert _sub().state == S.CANCELED and _sub().auto_renew is False
    _notify(
        client, apple_pki, "DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_ENABLED", uuid="n-7", at=1774000200000, tx=recovered
    )
    assert _sub().state == S.ACTIVE
    _notify(
        client,
        apple_pki,
        "DID_CHANGE_RENEWAL_PREF",
        "DOWNGRADE",
        uuid="n-8",
        at=1774000300000,
        tx=recovered,
        renewal={"autoRenewProductId": "com.example.basic.monthly"},
    )
    assert _sub().state == S.ACTIVE  # downgrades take effect at renewal
    _notify(
        client,
        apple_pki,
        "EXPIRED",
        "VOLUNTARY",
        uuid="n-9",
        at=1776600001000,
        tx=recovered,
        renewal={"autoRenewStatus": 0},
    )
    assert _sub().state == S.EXPIRED and keys() == []


def test_refund_revokes_and_is_recorded(client, apple_pki, catalog, customers):
    _notify(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="n-1", at=T0)
    _notify(
        client, apple_pki, "REFUND", uuid="n-r", at=T0 + DAY, tx={"revocationDate": T0 + DAY, "revocationReason": 0}
    )
    assert _sub().state == Subscription.State.REVOKED
    assert AuditEvent.objects.filter(action="subscription.refund_reported").count() == 1
    # Apple refunded the whole transaction: the refund is booked against its payment, once.
    from monetization.models import Payment, Refund
    from monetization.services.ledger import ledger_report

    payment = Payment.objects.get(provider="app_store")
    assert payment.refunded == payment.amount
    assert Refund.objects.get().status == "succeeded"
    assert ledger_report().balanced


def test_revoke_notification(client, apple_pki, catalog, customers):
    _notify(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="n-1", at=T0)
    _notify(client, apple_pki, "REVOKE", uuid="n-rv", at=T0 + DAY, tx={"revocationDate": T0 + DAY})
    assert _sub().state == Subscription.State.REVOKED


def test_duplicate_notification_uuid_is_stored_once(client, apple_pki, catalog, customers):
    _notify(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="n-1", at=T0)
    response = _notify(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="n-1", at=T0)
    assert response.json()["duplicates"] == 1
    assert WebhookEvent.objects.count() == 1 and Payment.objects.count() == 1


def test_chain_from_an_untrusted_root_is_rejected(client, catalog, customers):
    impostor = ApplePKI()  # same shape, but its root is not in APP_STORE_ROOT_CERTS
    body, _ = app_store_notification(impostor, notification_type="SUBSCRIBED", uuid="x", signed_ms=T0)
    response = post_app_store(client, body)
    assert response.status_code == 400 and response.json()["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists()


def test_leaf_without_apple_marker_oid_is_rejected(client, apple_pki, catalog, customers, settings, tmp_path):
    no_marker = ApplePKI(leaf_oid=False)
    settings.APP_STORE_ROOT_CERTS = f"{settings.APP_STORE_ROOT_CERTS},{no_marker.write_root(tmp_path / 'r2.cer')}"
    body, _ = app_store_notification(no_marker, notification_type="SUBSCRIBED", uuid="x", signed_ms=T0)
    response = post_app_store(client, body)
    assert response.status_code == 400 and response.json()["code"] == "invalid_signature"


def test_altered_payload_is_rejected(client, apple_pki, catalog, customers):
    body, _ = app_store_notification(apple_pki, notification_type="SUBSCRIBED", uuid="x", signed_ms=T0)
    signed = json.loads(body)["signedPayload"]
    header, payload, signature = signed.split(".")
    import base64

    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["notificationType"] = "REFUND"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = post_app_store(client, json.dumps({"signedPayload": f"{header}.{forged}.{signature}"}).encode())
    assert response.status_code == 400 and response.json()["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists()


def test_wrong_bundle_id_is_rejected(client, apple_pki, catalog, customers, settings):
    settings.APP_STORE_BUNDLE_ID = "com.example.other"
    body, _ = app_store_notification(apple_pki, notification_type="SUBSCRIBED", uuid="x", signed_ms=T0)
    response = post_app_store(client, body)
    assert response.status_code == 400 and response.json()["code"] == "invalid_signature"


@pytest.mark.parametrize("body", [b"{}", b"nope", b'{"signedPayload": 5}', b'{"signedPayload": "a.b"}'])
def test_malformed_bodies(client, body):
    response = post_app_store(client, body)
    assert response.status_code == 400 and response.json()["code"] == "malformed_payload"


def test_app_store_refunds_and_cancels_are_unsupported():
    provider = get_provider("app_store")
    with pytest.raises(UnsupportedOperation):
        provider.refund(payment_reference="1", amount=Money(1, "USD"), idempotency_key="k", reason="r")
    with pytest.raises(UnsupportedOperation):
        provider.cancel_subscription("1", at_period_end=True, idempotency_key="k")


@pytest.mark.parametrize("junk", ["!!!!", "ab$d", "a", "abc==="])
def test_fast_base64_check_rejects_what_pyjwt_rejects(junk):
    import jwt
    from jwt.exceptions import DecodeError

    from monetization.providers.app_store import fast_jws

    assert fast_jws.INSTALLED
    token = jwt.encode({"a": 1}, "secret-key-long-enough-for-hs256-0000", algorithm="HS256")
    header, _payload, signature = token.split(".")
    with pytest.raises(DecodeError):
        jwt.decode(f"{header}.{junk}.{signature}", options={"verify_signature": False})
    assert jwt.decode(token, options={"verify_signature": False}) == {"a": 1}


def test_a_remembered_token_parse_still_checks_the_signature_every_time():
    import jwt
    from jwt.exceptions import InvalidSignatureError

    key, other = "secret-key-long-enough-for-hs256-0000", "another-key-long-enough-for-hs256-000"
    token = jwt.encode({"a": 1}, key, algorithm="HS256")
    for _ in range(3):  # parsed once, then from memory
        assert jwt.decode(token, key, algorithms=["HS256"]) == {"a": 1}
        with pytest.raises(InvalidSignatureError):
            jwt.decode(token, other, algorithms=["HS256"])
    jwt.get_unverified_header(token)["alg"] = "none"  # a caller changing its copy changes nothing remembered
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
