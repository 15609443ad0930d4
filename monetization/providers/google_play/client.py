"""Google Play Developer API access behind a small interface.

``SubscriptionsV2Client`` is what the adapter needs; the real implementation
wraps google-api-python-client (``androidpublisher`` v3, static discovery
document, no network to build it). Tests give the adapter a client that
replays recorded subscriptionsv2 responses.
"""

from __future__ import annotations

from typing import Protocol


class SubscriptionsV2Client(Protocol):
    def get(self, *, package_name: str, token: str) -> dict: ...

    def acknowledge(self, *, package_name: str, product_id: str, token: str) -> None: ...

    def defer(self, *, package_name: str, token: str, body: dict) -> dict: ...

    def cancel(self, *, package_name: str, token: str, body: dict) -> None: ...

    def revoke(self, *, package_name: str, token: str, body: dict) -> None: ...

    def refund_order(self, *, package_name: str, order_id: str) -> None: ...

    def get_order(self, *, package_name: str, order_id: str) -> dict: ...

    def list_voided(self, *, package_name: str, start_ms: int, page_token: str = "") -> dict: ...


class GoogleApiSubscriptionsV2Client:
    """``purchases.subscriptionsv2`` (+ acknowledge and orders.refund) through Google's API client."""

    SCOPES = ["https://www.googleapis.com/auth/androidpublisher"]

    def __init__(self, *, credentials_file: str = "", http=None):
        self.credentials_file = credentials_file
        self.http = http  # tests: googleapiclient.http.HttpMock / HttpMockSequence
        self._service = None

    @property
    def service(self):
        if self._service is None:
            from googleapiclient.discovery import build

            if self.http is not None:
                self._service = build("androidpublisher", "v3", http=self.http, static_discovery=True)
            else:
                from google.oauth2 import service_account

                credentials = service_account.Credentials.from_service_account_file(
                    self.credentials_file, scopes=self.SCOPES
                )
                self._service = build(
                    "androidpublisher", "v3", credentials=credentials, static_discovery=True, cache_discovery=False
                )
        return self._service

    def get(self, *, package_name: str, token: str) -> dict:
        return self.service.purchases().subscriptionsv2().get(packageName=package_name, token=token).execute()

    def acknowledge(self, *, package_name: str, product_id: str, token: str) -> None:
        self.service.purchases().subscriptions().acknowledge(
            packageName=package_name, subscriptionId=product_id, token=token, body={}
        ).execute()

    def defer(self, *, package_name: str, token: str, body: dict) -> dict:
        return (
            self.service.purchases().subscriptionsv2().defer(packageName=package_name, token=token, body=body).execute()
        )

    def cancel(self, *, package_name: str, token: str, body: dict) -> None:
        self.service.purchases().subscriptionsv2().cancel(packageName=package_name, token=token, body=body).execute()

    def revoke(self, *, package_name: str, token: str, body: dict) -> None:
        self.service.purchases().subscriptionsv2().revoke(packageName=package_name, token=token, body=body).execute()

    def refund_order(self, *, package_name: str, order_id: str) -> None:
        self.service.orders().refund(packageName=package_name, orderId=order_id, revoke=False).execute()

    def get_order(self, *, package_name: str, order_id: str) -> dict:
        return self.service.orders().get(packageName=package_name, orderId=order_id).execute()

    def list_voided(self, *, package_name: str, start_ms: int, page_token: str = "") -> dict:
        """``purchases.voidedpurchases.list`` of subscriptions, partial refunds included."""
        kwargs = {"token": page_token} if page_token else {}
        return (
            self.service.purchases()
            .voidedpurchases()
            .list(
                packageName=package_name,
                startTime=str(start_ms),
                type=1,
                includeQuantityBasedPartialRefund=True,
                **kwargs,
            )
            .execute()
        )
