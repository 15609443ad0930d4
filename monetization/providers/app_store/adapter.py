"""App Store: Server Notifications V2 and signed transactions, verified with Apple's library.

``SignedDataVerifier`` checks the JWS's x5c chain against the root
certificates we trust (files named by ``APP_STORE_ROOT_CERTS``; Apple's root
in production, a test root in tests), the marker OIDs Apple puts on the leaf
and intermediate, the bundle id, app Apple id and environment. Online (OCSP)
checks are off: they need the network on the hot path; the chain is checked
at the payload's ``signedDate``, as Apple's library does in that mode.

Developers cannot refund or cancel App Store subscriptions (Apple owns both);
extending a renewal date is the one write Apple allows.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime

from appstoreserverlibrary.api_client import APIException, AppStoreServerAPIClient, GetTransactionHistoryVersion
from appstoreserverlibrary.models.ConsumptionRequest import ConsumptionRequest
from appstoreserverlibrary.models.DeliveryStatus import DeliveryStatus
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.ExtendReasonCode import ExtendReasonCode
from appstoreserverlibrary.models.ExtendRenewalDateRequest import ExtendRenewalDateRequest
from appstoreserverlibrary.models.NotificationHistoryRequest import NotificationHistoryRequest
from appstoreserverlibrary.models.TransactionHistoryRequest import Order, TransactionHistoryRequest
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
    _ChainVerifier,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from djmoney.money import Money

from monetization import clock
from monetization.providers.app_store import fast_jws  # noqa: F401  (speeds up PyJWT's base64 check)
from monetization.providers.base import (
    InvalidSignature,
    MalformedPayload,
    ProviderError,
    ProviderEvent,
    RefundResult,
    SubscriptionSnapshot,
    UnsupportedOperation,
)

from .parsing import ms, snapshot_from_transaction

# Apple caps one renewal-date extension at 90 days.
MAX_EXTENSION_DAYS = 90


def _jws_claims(token: str) -> dict:
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _der(blob: bytes) -> bytes:
    if b"-----BEGIN" in blob:
        return x509.load_pem_x509_certificate(blob).public_bytes(Encoding.DER)
    return blob


def root_certificates(paths: str) -> list[bytes]:
    files = [p.strip() for p in re.split(r"[,:]", paths or "") if p.strip()]
    certs = []
    for path in files:
        with open(os.path.expanduser(path), "rb") as fh:
            certs.append(_der(fh.read()))
    return certs


class _CachingChainVerifier(_ChainVerifier):
    """Apple's chain verifier, remembering a verified chain for 15 minutes like its online mode does.

    Every notification carries the same chain three times (payload, transaction,
    renewal info); re-running X.509 path validation for each is most of the
    cost of a webhook. A chain is only cached after it verified in full.
    """

    def verify_chain(self, certificates, perform_online_checks, effective_date):
        key = tuple(certificates)
        cached = self.verified_certificates_cache.get(key)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        public_key = self._verify_chain_without_caching(
            certificates=certificates, perform_online_checks=perform_online_checks, effective_date=effective_date
        )
        self.put_verified_public_key(certificates, public_key)
        return public_key


class AppStoreProvider:
    """The App Store adapter. ``api_client`` is injectable (tests replay recorded responses through it)."""

    def __init__(self, name: str = "app_store", *, api_client: AppStoreServerAPIClient | None = None):
        self.name = name
        self.api_client = api_client
        self._verifier: SignedDataVerifier | None = None
        self._verifier_key: tuple | None = None
        self._lock = threading.Lock()

    # --- verification -----------------------------------------------------

    @property
    def verifier(self) -> SignedDataVerifier:
        key = (
            settings.APP_STORE_ROOT_CERTS,
            settings.APP_STORE_BUNDLE_ID,
            settings.APP_STORE_ENVIRONMENT,
            settings.APP_STORE_APP_APPLE_ID,
        )
        if self._verifier is None or self._verifier_key != key:
            with self._lock:
                if not settings.APP_STORE_ROOT_CERTS or not settings.APP_STORE_BUNDLE_ID:
                    raise ProviderError(
                        "APP_STORE_ROOT_CERTS and APP_STORE_BUNDLE_ID must be configured.",
                        code="provider_not_configured",
                    )
                try:
                    verifier = SignedDataVerifier(
                        root_certificates(settings.APP_STORE_ROOT_CERTS),
                        False,  # enable_online_checks: no OCSP round trip per notification
                        Environment(settings.APP_STORE_ENVIRONMENT),
                        settings.APP_STORE_BUNDLE_ID,
                        settings.APP_STORE_APP_APPLE_ID,  # required in Production
                    )
                except (OSError, ValueError) as exc:
                    raise ProviderError(
                        f"App Store verification is misconfigured: {exc}", code="provider_not_configured"
                    ) from exc
                verifier._chain_verifier = _CachingChainVerifier(verifier._chain_verifier.root_certificates)
                self._verifier, self._verifier_key = verifier, key
        return self._verifier

    def _verified(self, fn, token: str) -> dict:
        """Run one of the library's verify_and_decode_* and return the verified claims as a plain dict."""
        try:
            fn(token)
        except VerificationException as exc:
            if exc.status == VerificationStatus.RETRYABLE_VERIFICATION_FAILURE:
                raise ProviderError(str(exc), code="provider_unavailable", retryable=True) from exc
            raise InvalidSignature(f"App Store signature check failed: {exc.status.name}") from exc
        except (ValueError, TypeError, KeyError) as exc:
            raise MalformedPayload("The signed App Store payload has an unexpected shape.") from exc
        # Verified above; read the same payload again as plain JSON to keep Apple's raw field names.
        # (Not jwt.decode: PyJWT validates base64 character by character in Python, which dominates the cost
        # of a notification that nests two more JWS, and the library has already run it three times.)
        return _jws_claims(token)

    def decode_notification(self, signed_payload: str) -> ProviderEvent:
        v = self.verifier
        notification = self._verified(v.verify_and_decode_notification, signed_payload)
        data = dict(notification.get("data") or {})
        transaction = renewal = None
        if data.get("signedTransactionInfo"):
            transaction = self._verified(v.verify_and_decode_signed_transaction, data.pop("signedTransactionInfo"))
        if data.get("signedRenewalInfo"):
            renewal = self._verified(v.verify_and_decode_renewal_info, data.pop("signedRenewalInfo"))
        notification["data"] = data
        event_id = notification.get("notificationUUID")
        event_type = notification.get("notificationType")
        if not event_id or not event_type:
            raise MalformedPayload("An App Store notification needs notificationUUID and notificationType.")
        subtype = notification.get("subtype") or ""
        return ProviderEvent(
            provider="app_store",
            event_id=event_id,
            event_type=f"{event_type}.{subtype}" if subtype else event_type,
            occurred_at=ms(notification.get("signedDate")) or clock.now(),
            payload={"notification": notification, "transaction": transaction, "renewal": renewal},
            subscription_ref=(transaction or {}).get("originalTransactionId", ""),
        )

    def verify_webhook(self, *, body: bytes, headers: dict[str, str]) -> list[ProviderEvent]:
        try:
            signed_payload = json.loads(body)["signedPayload"]
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedPayload('The body must be JSON {"signedPayload": "<JWS>"}.') from exc
        if not isinstance(signed_payload, str) or signed_payload.count(".") != 2:
            raise MalformedPayload("signedPayload is not a compact JWS.")
        return [self.decode_notification(signed_payload)]

    def verify_signed_transaction(self, signed_transaction: str, signed_renewal_info: str = "") -> SubscriptionSnapshot:
        """A transaction a client app sends us (StoreKit 2 ``jwsRepresentation``), verified."""
        if not isinstance(signed_transaction, str) or signed_transaction.count(".") != 2:
            raise MalformedPayload("signed_transaction is not a compact JWS.")
        transaction = self._verified(self.verifier.verify_and_decode_signed_transaction, signed_transaction)
        renewal = (
            self._verified(self.verifier.verify_and_decode_renewal_info, signed_renewal_info)
            if signed_renewal_info
            else None
        )
        return snapshot_from_transaction(transaction, renewal, as_of=ms(transaction.get("signedDate")) or clock.now())

    # --- App Store Server API ----------------------------------------------

    @property
    def client(self) -> AppStoreServerAPIClient:
        if self.api_client is None:
            if not (settings.APP_STORE_PRIVATE_KEY_PATH and settings.APP_STORE_KEY_ID and settings.APP_STORE_ISSUER_ID):
                raise ProviderError(
                    "App Store Server API credentials are not configured.", code="provider_not_configured"
                )
            with open(settings.APP_STORE_PRIVATE_KEY_PATH, "rb") as fh:
                key = fh.read()
            self.api_client = AppStoreServerAPIClient(
                key,
                settings.APP_STORE_KEY_ID,
                settings.APP_STORE_ISSUER_ID,
                settings.APP_STORE_BUNDLE_ID,
                Environment(settings.APP_STORE_ENVIRONMENT),
            )
        return self.api_client

    def _api(self, fn, *args):
        try:
            return fn(*args)
        except APIException as exc:
            retryable = exc.http_status_code in (429,) or exc.http_status_code >= 500
            code = "not_found" if exc.http_status_code == 404 else "provider_error"
            raise ProviderError(f"App Store Server API: {exc}", code=code, retryable=retryable) from exc
        except OSError as exc:
            raise ProviderError(
                f"App Store Server API unreachable: {exc}", code="provider_unavailable", retryable=True
            ) from exc

    def fetch_subscription(self, provider_subscription_id: str) -> SubscriptionSnapshot:
        response = self._api(self.client.get_all_subscription_statuses, provider_subscription_id)
        for group in response.data or []:
            for item in group.lastTransactions or []:
                if item.originalTransactionId == provider_subscription_id:
                    transaction = self._verified(
                        self.verifier.verify_and_decode_signed_transaction, item.signedTransactionInfo
                    )
                    renewal = (
                        self._verified(self.verifier.verify_and_decode_renewal_info, item.signedRenewalInfo)
                        if item.signedRenewalInfo
                        else None
                    )
                    return snapshot_from_transaction(transaction, renewal, as_of=clock.now())
        raise ProviderError(f"No App Store subscription {provider_subscription_id}.", code="not_found")

    def transaction_history(self, original_transaction_id: str, *, since: datetime) -> list[dict]:
        """Every transaction of a subscription since ``since`` (Get Transaction History v2), verified, oldest first."""
        request = TransactionHistoryRequest(startDate=int(since.timestamp() * 1000), sort=Order.ASCENDING)
        transactions, revision = [], None
        while True:
            page = self._api(
                self.client.get_transaction_history,
                original_transaction_id,
                revision,
                request,
                GetTransactionHistoryVersion.V2,
            )
            for signed in page.signedTransactions or []:
                transactions.append(self._verified(self.verifier.verify_and_decode_signed_transaction, signed))
            if not page.hasMore or not page.revision:
                return transactions
            revision = page.revision

    def list_events(self, *, since: datetime) -> Iterator[ProviderEvent]:
        """The notification history (Apple keeps 180 days), page by page."""
        request = NotificationHistoryRequest(
            startDate=int(since.timestamp() * 1000), endDate=int(clock.now().timestamp() * 1000)
        )
        token = None
        while True:
            page = self._api(self.client.get_notification_history, token, request)
            for item in page.notificationHistory or []:
                if item.signedPayload:
                    yield self.decode_notification(item.signedPayload)
            if not page.hasMore or not page.paginationToken:
                return
            token = page.paginationToken

    @property
    def answers_consumption_requests(self) -> bool:
        """Consumption information goes to Apple only with the customers' consent and the Server API configured."""
        configured = self.api_client is not None or bool(
            settings.APP_STORE_PRIVATE_KEY_PATH and settings.APP_STORE_KEY_ID and settings.APP_STORE_ISSUER_ID
        )
        return settings.APP_STORE_CONSUMPTION_CONSENT and configured

    def answer_consumption_request(self, transaction_id: str, answer: dict) -> None:
        request = ConsumptionRequest(
            customerConsented=True,
            sampleContentProvided=bool(answer.get("sample_content_provided")),
            deliveryStatus=DeliveryStatus.DELIVERED if answer.get("delivered") else DeliveryStatus.UNDELIVERED_OTHER,
        )
        self._api(self.client.send_consumption_information, transaction_id, request)

    def refund(self, *, payment_reference: str, amount: Money, idempotency_key: str, reason: str) -> RefundResult:
        raise UnsupportedOperation(
            "Apple handles App Store refunds; customers request them at reportaproblem.apple.com."
        )

    def cancel_subscription(self, provider_subscription_id: str, *, at_period_end: bool, idempotency_key: str) -> None:
        raise UnsupportedOperation(
            "App Store subscriptions are canceled by the customer in their Apple account settings."
        )

    def pause_subscription(self, provider_subscription_id: str, *, idempotency_key: str) -> None:
        raise UnsupportedOperation("The App Store has no developer-initiated pause.")

    def change_subscription_plan(
        self, provider_subscription_id: str, *, store_product_id: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        raise UnsupportedOperation("App Store plans are changed by the customer in their Apple account settings.")

    def billing_portal_session(self, *, customer_ref: str, return_url: str, idempotency_key: str):
        raise UnsupportedOperation("Apple keeps the payment method; the customer updates it in their Apple account.")

    def resume_subscription(self, provider_subscription_id: str, *, idempotency_key: str) -> None:
        raise UnsupportedOperation("The App Store has no developer-initiated pause.")

    def extend_subscription(
        self, provider_subscription_id: str, *, days: int, reason: str, idempotency_key: str
    ) -> SubscriptionSnapshot:
        if not 1 <= days <= MAX_EXTENSION_DAYS:
            raise ProviderError(f"The App Store extends by 1 to {MAX_EXTENSION_DAYS} days.", code="invalid_request")
        request = ExtendRenewalDateRequest(
            extendByDays=days,
            extendReasonCode=ExtendReasonCode.CUSTOMER_SATISFACTION,
            requestIdentifier=idempotency_key,  # Apple deduplicates on it
        )
        response = self._api(self.client.extend_subscription_renewal_date, provider_subscription_id, request)
        if not response.success:
            raise ProviderError("The App Store refused the extension.", code="provider_refused")
        return self.fetch_subscription(provider_subscription_id)
