"""The Stripe Connect payout adapter against Stripe's HTTP API as recorded: a Transfer per payout with the
payout's idempotency key, Stripe's answer (its own response shape) recorded; an API error fails the payout."""

import json
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
import stripe
from djmoney.money import Money

from creators.models import Payout
from creators.services.payouts import cycle_pay
from monetization.providers.base import PayoutError
from monetization.providers.stripe.payouts import StripeConnectPayouts

from .test_payouts import approved_cycle


def transfer_body(*, n: int, amount: int, currency: str, destination: str, key: str) -> dict:
    """A Transfer as Stripe returns it (API 2024-06-20 shape)."""
    return {
        "id": f"tr_1QRecorded{n:08d}",
        "object": "transfer",
        "amount": amount,
        "amount_reversed": 0,
        "balance_transaction": f"txn_1QRecorded{n:08d}",
        "created": 1764460800 + n,
        "currency": currency,
        "description": None,
        "destination": destination,
        "destination_payment": f"py_1QRecorded{n:08d}",
        "livemode": False,
        "metadata": {"idempotency_key": key},
        "reversals": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/transfers/tr_1QRecorded{n:08d}/reversals",
        },
        "reversed": False,
        "source_transaction": None,
        "source_type": "card",
        "transfer_group": None,
    }


class StripeTransfersStub(stripe.HTTPClient):
    """Stripe's /v1/transfers as recorded: one transfer per Idempotency-Key (a repeated key gets the first
    back, as Stripe does); destinations in ``refuse`` get Stripe's recorded 400 error."""

    name = "stripe-transfers-stub"

    def __init__(self, refuse=()):
        super().__init__()
        self.requests, self.by_key, self.refuse = [], {}, set(refuse)

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        form = {k: v[0] for k, v in parse_qs(post_data or "").items()}
        self.requests.append({"method": method, "url": url, "headers": dict(headers), "form": form})
        assert method == "post" and url.endswith("/v1/transfers")
        if form["destination"] in self.refuse:
            error = {
                "error": {
                    "code": "account_invalid",
                    "message": "The provided key does not have access to account 'acct_x' (or that account does "
                    "not exist). Application access may have been revoked.",
                    "type": "invalid_request_error",
                    "request_log_url": "https://dashboard.stripe.com/test/logs/req_recorded",
                }
            }
            return json.dumps(error), 400, {"request-id": "req_recorded"}
        key = headers["Idempotency-Key"]
        if key not in self.by_key:
            self.by_key[key] = transfer_body(
                n=len(self.by_key) + 1,
                amount=int(form["amount"]),
                currency=form["currency"],
                destination=form["destination"],
                key=form["metadata[idempotency_key]"],
            )
        return json.dumps(self.by_key[key]), 200, {"request-id": "req_recorded", "idempotent-replayed": "true"}

    def close(self):
        pass


@pytest.fixture
def stripe_key(settings):
    settings.STRIPE_API_KEY = "sk_test_recorded"


def test_transfer_request_and_response_in_stripes_shapes(stripe_key):
    http = StripeTransfersStub()
    result = StripeConnectPayouts(http_client=http).transfer(
        destination="acct_1QCreator0000001", amount=Money("19.40", "EUR"), idempotency_key="payout:7"
    )
    (sent,) = http.requests
    assert sent["form"] == {
        "amount": "1940",
        "currency": "eur",
        "destination": "acct_1QCreator0000001",
        "metadata[idempotency_key]": "payout:7",
    }
    assert sent["headers"]["Idempotency-Key"] == "payout:7"
    assert sent["headers"]["Authorization"] == "Bearer sk_test_recorded"
    assert (result.transfer_id, result.amount, result.destination) == (
        "tr_1QRecorded00000001",
        Money("19.40", "EUR"),
        "acct_1QCreator0000001",
    )


def test_a_stripe_error_is_a_payout_error(stripe_key):
    http = StripeTransfersStub(refuse={"acct_gone"})
    with pytest.raises(PayoutError, match="does not have access"):
        StripeConnectPayouts(http_client=http).transfer(
            destination="acct_gone", amount=Money("10.00", "USD"), idempotency_key="payout:8"
        )


def test_no_key_configured_refuses_before_any_request(settings):
    settings.STRIPE_API_KEY = ""
    http = StripeTransfersStub()
    with pytest.raises(PayoutError, match="STRIPE_API_KEY"):
        StripeConnectPayouts(http_client=http).transfer(
            destination="acct_1", amount=Money("10.00", "USD"), idempotency_key="payout:9"
        )
    assert http.requests == []


@pytest.mark.django_db
def test_a_paying_run_through_stripe_pays_each_payout_once_and_fails_a_refused_account(stripe_key):
    cycle = approved_cycle(3)
    first, *rest = Payout.objects.filter(cycle=cycle).order_by("id")
    http = StripeTransfersStub(refuse={first.destination})
    provider = StripeConnectPayouts(http_client=http)
    assert cycle_pay(cycle_id=cycle.pk, provider=provider) == {"paid": 2, "failed": 1}
    cycle_pay(cycle_id=cycle.pk, provider=provider)  # again: nothing left to send
    assert len(http.requests) == 3
    for p in rest:
        p.refresh_from_db()
        assert p.status == "paid" and p.transfer_id == http.by_key[p.idempotency_key]["id"]
        assert Decimal(http.by_key[p.idempotency_key]["amount"]) / 100 == p.amount
    first.refresh_from_db()
    assert first.status == "failed" and "does not have access" in first.failure_reason
