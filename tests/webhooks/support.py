"""Real signatures and recorded provider responses for webhook tests.

Stripe: a real ``Stripe-Signature`` (HMAC-SHA256 over ``"{t}.{body}"``) with a test secret.
App Store: a throwaway PKI (root, intermediate and leaf with Apple's marker
OIDs) and ES256 JWS with an x5c chain, verified by Apple's own library.
Google Play: Pub/Sub push envelopes and recorded subscriptionsv2 resources.

Payloads are built by the provider packages' ``payloads`` modules (as the demo's are),
with the values of the payloads recorded in tests/fixtures; test_payloads checks the
builders against those recordings.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import stripe
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from monetization.providers.app_store import payloads as apple
from monetization.providers.base import ProviderError
from monetization.providers.google_play import payloads as play
from monetization.providers.stripe import payloads as stripe_payloads

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
STRIPE_SECRET = "whsec_test_3f9a1c5e7b2d4f6a8c0e1b3d5f7a9c1e"
BUNDLE_ID = "com.example.backoffice"
APP_APPLE_ID = 1234567890
PLAY_PACKAGE = "com.example.backoffice"
PLAY_PUSH_TOKEN = "push-token-7d1e0f"


def fixture(provider: str, name: str) -> dict:
    return json.loads((FIXTURES / provider / f"{name}.json").read_text())


# --- Stripe -------------------------------------------------------------------


def stripe_signature(body: bytes, *, secret: str = STRIPE_SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def stripe_body(event: dict) -> bytes:
    return json.dumps(event, indent=2).encode()


def post_stripe(client, event: dict, *, secret: str = STRIPE_SECRET, timestamp: int | None = None, body=None):
    body = stripe_body(event) if body is None else body
    return client.post(
        "/api/v1/webhooks/stripe",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(body, secret=secret, timestamp=timestamp),
    )


STRIPE_CUSTOMER = "cus_RwebCustomer0001"
STRIPE_PRODUCT = "prod_RpremiumWeb0001"


def stripe_subscription_object(
    *,
    status: str = "active",
    sub_id: str = "sub_1QwebPremium0000000001",
    external_id: str = "1700000000001",
    period_start: int = 1767225600,
    period_end: int = 1769904000,
    cancel_at_period_end: bool = False,
    price_id: str = "price_1QpremiumMonthlyUSD0001",
    trial_end: int | None = None,
    customer: str = STRIPE_CUSTOMER,
    pause_collection: dict | None = None,
    canceled_at: int | None = None,
) -> dict:
    """The recorded web subscription (tests/fixtures/stripe/customer.subscription.created.json), varied."""
    return stripe_payloads.subscription(
        sub_id=sub_id,
        customer=customer,
        status=status,
        created=1767225600,
        period_start=period_start,
        period_end=period_end,
        price_id=price_id,
        product=STRIPE_PRODUCT,
        unit_amount=800,
        item_id="si_RwebItem000000001",
        item_created=1767225601,
        external_id=external_id,
        latest_invoice="in_1QwebInvoice00000000001",
        default_payment_method="pm_1QcardVisa000000000001",
        cancel_at_period_end=cancel_at_period_end,
        trial_end=trial_end,
        pause_collection=pause_collection,
        canceled_at=canceled_at,
        livemode=False,
    )


def stripe_subscription_event(
    *,
    event_id: str,
    created: int,
    event_type: str = "customer.subscription.updated",
    request_id: str | None = "req_Wq3example0001",
    idempotency_key: str | None = "3f1c7d0e-0000-4000-8000-000000000001",
    **subscription,
) -> dict:
    return stripe_payloads.event(
        event_id=event_id,
        event_type=event_type,
        created=created,
        obj=stripe_subscription_object(**subscription),
        livemode=False,
        request_id=request_id,
        idempotency_key=idempotency_key,
    )


def stripe_invoice_object(
    *,
    invoice_id: str = "in_1QwebInvoice00000000001",
    sub_id: str = "sub_1QwebPremium0000000001",
    amount: int = 800,
    billing_reason: str = "subscription_create",
    customer: str = STRIPE_CUSTOMER,
) -> dict:
    """The recorded first invoice (tests/fixtures/stripe/invoice.paid.json), varied."""
    return stripe_payloads.invoice(
        invoice_id=invoice_id,
        customer=customer,
        sub_id=sub_id,
        total=amount,
        created=1767225600,
        period_start=1767225600,
        period_end=1769904000,
        price_id="price_1QpremiumMonthlyUSD0001",
        product=STRIPE_PRODUCT,
        line_id="il_1QwebLine000000000001",
        number="A1B2C3D4-0001",
        billing_reason=billing_reason,
        external_id="1700000000001",
        finalized_at=1767225601,
        paid_at=1767225602,
        livemode=False,
    )


def stripe_invoice_event(
    *,
    event_id: str,
    created: int,
    invoice_id: str,
    sub_id: str = "sub_1QwebPremium0000000001",
    amount: int = 800,
    billing_reason: str = "subscription_cycle",
    event_type: str = "invoice.paid",
    customer: str = STRIPE_CUSTOMER,
) -> dict:
    return stripe_payloads.event(
        event_id=event_id,
        event_type=event_type,
        created=created,
        obj=stripe_invoice_object(
            invoice_id=invoice_id, sub_id=sub_id, amount=amount, billing_reason=billing_reason, customer=customer
        ),
        livemode=False,
    )


class RecordedStripeHTTPClient(stripe.HTTPClient):
    """Replays recorded Stripe API responses by (method, path); records every request."""

    name = "recorded"

    def __init__(self, responses: dict[tuple[str, str], dict | list]):
        super().__init__()
        self.responses = responses
        self.requests: list[dict] = []

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        from urllib.parse import urlsplit

        path = urlsplit(url).path
        self.requests.append(
            {"method": method, "path": path, "url": url, "headers": dict(headers or {}), "body": post_data}
        )
        body = self.responses.get((method.lower(), path))
        if body is None:
            return json.dumps({"error": {"type": "invalid_request_error", "message": "No such resource"}}), 404, {}
        if isinstance(body, list):  # successive responses
            body = body.pop(0) if len(body) > 1 else body[0]
        return json.dumps(body), 200, {"request-id": "req_recorded"}

    def close(self):
        pass


# --- App Store ----------------------------------------------------------------

APPLE_LEAF_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.11.1")
APPLE_INTERMEDIATE_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.2.1")


class ApplePKI:
    """A root CA, an intermediate and a leaf shaped like Apple's (marker OIDs included)."""

    def __init__(self, *, leaf_oid: bool = True):
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.int_key = ec.generate_private_key(ec.SECP256R1())
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        not_before = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        not_after = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)
        root_name = _name("Test Apple Root CA - G3")
        int_name = _name("Test Apple Worldwide Developer Relations CA - G6")
        self.root = (
            _builder(root_name, root_name, self.root_key.public_key(), not_before, not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.root_key.public_key()), critical=False)
            .sign(self.root_key, hashes.SHA256())
        )
        self.intermediate = (
            _builder(int_name, root_name, self.int_key.public_key(), not_before, not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.int_key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root_key.public_key()), critical=False
            )
            .add_extension(x509.UnrecognizedExtension(APPLE_INTERMEDIATE_OID, b"\x05\x00"), critical=False)
            .sign(self.root_key, hashes.SHA256())
        )
        leaf = (
            _builder(
                _name("Prod ECC Mac App Store and iTunes Store Receipt Signing"),
                int_name,
                self.leaf_key.public_key(),
                not_before,
                not_after,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.leaf_key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.int_key.public_key()), critical=False
            )
        )
        if leaf_oid:
            leaf = leaf.add_extension(x509.UnrecognizedExtension(APPLE_LEAF_OID, b"\x05\x00"), critical=False)
        self.leaf = leaf.sign(self.int_key, hashes.SHA256())

    def x5c(self) -> list[str]:
        return [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
            for c in (self.leaf, self.intermediate, self.root)
        ]

    def write_root(self, path: Path) -> Path:
        path.write_bytes(self.root.public_bytes(serialization.Encoding.DER))
        return path

    def sign(self, claims: dict, *, key=None) -> str:
        return jwt.encode(claims, key or self.leaf_key, algorithm="ES256", headers={"x5c": self.x5c()})


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Apple Inc.")]
    )


def _builder(subject, issuer, public_key, not_before, not_after) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


APPLE_TRANSACTION_ID = "2000000812345001"
APPLE_PRODUCT = "com.example.premium.monthly"


def app_store_parts(
    *,
    notification_type: str = "SUBSCRIBED",
    subtype: str = "INITIAL_BUY",
    uuid: str = "",
    signed_ms: int = 1767225605000,
) -> dict:
    """The recorded notification (tests/fixtures/app_store/subscribed.json), decoded, varied."""
    return apple.decoded(
        apple.notification(
            notification_type=notification_type,
            subtype=subtype,
            uuid=uuid or "002e14d5-51f5-4503-b5a8-c3a1af68eb20",
            signed_ms=signed_ms,
            app_apple_id=APP_APPLE_ID,
            bundle_id=BUNDLE_ID,
        ),
        apple.transaction(
            transaction_id=APPLE_TRANSACTION_ID,
            original_transaction_id=APPLE_TRANSACTION_ID,
            web_order_line_item_id="2000000077770001",
            bundle_id=BUNDLE_ID,
            product_id=APPLE_PRODUCT,
            purchase_ms=1767225600000,
            original_purchase_ms=1767225600000,
            expires_ms=1769904000000,
            signed_ms=signed_ms,
            price=9990,
            currency="USD",
            storefront_id="143441",
            app_account_token="7e3fb20b-4cdb-47cc-936d-99d65f608138",
            app_transaction_id="704289572311491234",
        ),
        apple.renewal_info(
            original_transaction_id=APPLE_TRANSACTION_ID,
            product_id=APPLE_PRODUCT,
            signed_ms=signed_ms,
            recent_start_ms=1767225600000,
            renewal_ms=1769904000000,
            renewal_price=9990,
            currency="USD",
            app_transaction_id="704289572311491234",
        ),
    )


def app_store_notification(
    pki: ApplePKI,
    *,
    notification_type: str,
    subtype: str | None = None,
    uuid: str,
    signed_ms: int,
    transaction_updates: dict | None = None,
    renewal_updates: dict | None = None,
) -> tuple[bytes, dict]:
    """A signed App Store Server Notification V2 body, and the decoded parts."""
    parts = app_store_parts(notification_type=notification_type, subtype=subtype or "", uuid=uuid, signed_ms=signed_ms)
    notification, transaction, renewal = parts["notification"], parts["transaction"], parts["renewal"]
    transaction.update(transaction_updates or {})
    renewal.update(renewal_updates or {})
    data = copy.deepcopy(notification["data"])
    data["signedTransactionInfo"] = pki.sign(transaction)
    data["signedRenewalInfo"] = pki.sign(renewal)
    signed = pki.sign({**notification, "data": data})
    return json.dumps({"signedPayload": signed}).encode(), {"transaction": transaction, "renewal": renewal}


def post_app_store(client, body: bytes):
    return client.post("/api/v1/webhooks/app-store", data=body, content_type="application/json")


# --- Google Play ----------------------------------------------------------------

PLAY_TOKEN = fixture("google_play", "developer_notification")["subscriptionNotification"]["purchaseToken"]
PLAY_PUSH_SUBSCRIPTION = "projects/example-backoffice/subscriptions/play-rtdn-push"


def play_notification(*, code: int = 4, event_ms: int = 1767225605123, token: str = PLAY_TOKEN) -> dict:
    """The recorded developer notification (tests/fixtures/google_play/developer_notification.json), varied."""
    return play.developer_notification(
        package_name=PLAY_PACKAGE, event_ms=event_ms, code=code, token=token, product_id="premium"
    )


def play_push_envelope(notification: dict, *, message_id: str = "136969346945") -> dict:
    """The recorded push (tests/fixtures/google_play/rtdn_push.json) carrying ``notification``."""
    published = dt.datetime(2026, 1, 1, 0, 0, 5, 123000, tzinfo=dt.UTC)
    return play.pubsub_push(
        notification=notification, message_id=message_id, published=published, subscription=PLAY_PUSH_SUBSCRIPTION
    )


def play_push(*, code: int, message_id: str, event_ms: int, token: str = PLAY_TOKEN) -> bytes:
    envelope = play_push_envelope(play_notification(code=code, event_ms=event_ms, token=token), message_id=message_id)
    return json.dumps(envelope).encode()


def play_voided_push(*, message_id: str, event_ms: int, order_id: str, token: str = PLAY_TOKEN, refund_type=1) -> bytes:
    notification = play.voided_notification(
        package_name=PLAY_PACKAGE, event_ms=event_ms, token=token, order_id=order_id, refund_type=refund_type
    )
    return json.dumps(play_push_envelope(notification, message_id=message_id)).encode()


def post_play(client, body: bytes, *, token: str = PLAY_PUSH_TOKEN):
    return client.post(f"/api/v1/webhooks/google-play?token={token}", data=body, content_type="application/json")


def play_resource(state: str, **updates) -> dict:
    """The recorded subscriptionsv2 resource (tests/fixtures/google_play/subscriptionsv2_active.json), varied."""
    resource = play.subscription_v2(
        state=state,
        product_id="premium",
        base_plan_id="monthly",
        start="2026-01-01T00:00:00.000Z",
        expiry="2026-02-01T00:00:00.000Z",
        order_id="GPA.3312-5478-9012-34567",
        currency="USD",
        units="9",
        nanos=990000000,
        account_id="1700000000003",
        acknowledgement="ACKNOWLEDGEMENT_STATE_PENDING",
        etag="CMPKu8aW0pEDEAE=",
    )
    item = resource["lineItems"][0]
    for key, value in updates.items():
        if key in ("expiryTime", "latestSuccessfulOrderId"):
            item[key] = value
        elif key == "autoRenewEnabled":
            item["autoRenewingPlan"]["autoRenewEnabled"] = value
        else:
            resource[key] = value
    return resource


class RecordedPlayClient:
    """A SubscriptionsV2Client replaying recorded resources; what the store 'says now' is ``resources``."""

    def __init__(self, resources: dict[str, dict] | None = None, orders: dict[str, dict] | None = None):
        self.resources = resources or {}
        self.orders = orders or {}  # orders.get answers, by order id
        self.voided: list[dict] = []  # voidedpurchases.list answers (one page)
        self.calls: list[tuple[str, dict]] = []

    def get_order(self, *, package_name, order_id):
        self.calls.append(("get_order", {"order_id": order_id}))
        if order_id not in self.orders:
            raise ProviderError("not found", code="not_found")
        return copy.deepcopy(self.orders[order_id])

    def list_voided(self, *, package_name, start_ms, page_token=""):
        self.calls.append(("list_voided", {"start_ms": start_ms}))
        return {"voidedPurchases": [v for v in self.voided if int(v["voidedTimeMillis"]) >= start_ms]}

    def get(self, *, package_name, token):
        self.calls.append(("get", {"token": token}))
        if token not in self.resources:
            raise ProviderError("not found", code="not_found")
        return copy.deepcopy(self.resources[token])

    def acknowledge(self, *, package_name, product_id, token):
        self.calls.append(("acknowledge", {"token": token, "product_id": product_id}))
        self.resources[token]["acknowledgementState"] = "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"

    def defer(self, *, package_name, token, body):
        self.calls.append(("defer", {"token": token, "body": body}))
        return {}

    def cancel(self, *, package_name, token, body):
        self.calls.append(("cancel", {"token": token, "body": body}))

    def revoke(self, *, package_name, token, body):
        self.calls.append(("revoke", {"token": token, "body": body}))

    def refund_order(self, *, package_name, order_id):
        self.calls.append(("refund_order", {"order_id": order_id}))


class RecordedAppStoreClient:
    """Apple's AppStoreServerAPIClient with its HTTP transport replaced by recorded responses."""

    def __new__(cls, responses: dict[tuple[str, str], list[dict]]):
        import requests
        from appstoreserverlibrary.api_client import AppStoreServerAPIClient
        from appstoreserverlibrary.models.Environment import Environment
        from requests.structures import CaseInsensitiveDict

        key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

        class _Client(AppStoreServerAPIClient):
            requests_made: list = []

            def _execute_request(self, method, url, params, headers, json, data):
                from urllib.parse import urlsplit

                path = urlsplit(url).path
                self.requests_made.append({"method": method, "path": path, "params": params, "json": json})
                queue = responses.get((method, path)) or []
                response = requests.Response()
                response.headers = CaseInsensitiveDict({"content-type": "application/json"})
                if not queue:
                    response.status_code, response._content = 404, b'{"errorCode": 4040010, "errorMessage": "nf"}'
                    return response
                body = queue.pop(0) if len(queue) > 1 else queue[0]
                response.status_code, response._content = 200, __import__("json").dumps(body).encode()
                return response

        return _Client(key, "KEYID12345", "57246542-96fe-1a63-e053-0824d011072a", BUNDLE_ID, Environment.PRODUCTION)
