"""Stripe Connect onboarding against Stripe's HTTP API as recorded (its own response shapes): an Express
account made once per creator under the creator's idempotency key, a fresh Account Link per request, and the
account's status synced back from ``account.updated`` into payout holds."""

import json
from urllib.parse import parse_qs

import pytest
import stripe

from creators.models import Payout, PayoutHold, PayoutProfile
from creators.services.connect import connect_account_updated, creator_connect_onboarding_link
from monetization.errors import Conflict, InvalidInput
from monetization.models import AuditEvent
from monetization.providers.stripe.payouts import StripeConnectPayouts

from .factories import make_creator

pytestmark = pytest.mark.django_db
CREATED = 1764460800


def account_body(account_id: str, *, email: str, country: str, payouts_enabled=False, due=("external_account",)):
    """An Express account as Stripe returns it (API 2024-06-20 shape, trimmed of nothing we read)."""
    return {
        "id": account_id,
        "object": "account",
        "business_profile": {"mcc": None, "name": None, "url": None},
        "capabilities": {"transfers": "inactive"},
        "charges_enabled": False,
        "controller": {"type": "application", "is_controller": True},
        "country": country,
        "created": CREATED,
        "default_currency": "usd",
        "details_submitted": False,
        "email": email,
        "external_accounts": {"object": "list", "data": [], "has_more": False, "total_count": 0},
        "metadata": {},
        "payouts_enabled": payouts_enabled,
        "requirements": {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": list(due),
            "disabled_reason": "requirements.past_due" if due else None,
            "errors": [],
            "eventually_due": list(due),
            "past_due": list(due),
            "pending_verification": [],
        },
        "settings": {"payouts": {"schedule": {"delay_days": 2, "interval": "daily"}}},
        "type": "express",
    }


class StripeConnectStub(stripe.HTTPClient):
    """Stripe's /v1/accounts (one account per Idempotency-Key, as Stripe replays a key) and /v1/account_links."""

    name = "stripe-connect-stub"

    def __init__(self, fail_links=False):
        super().__init__()
        self.requests, self.accounts, self.fail_links = [], {}, fail_links

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        form = {k: v[0] for k, v in parse_qs(post_data or "").items()}
        self.requests.append({"method": method, "url": url, "headers": dict(headers), "form": form})
        if url.endswith("/v1/accounts"):
            key = headers["Idempotency-Key"]
            if key not in self.accounts:
                self.accounts[key] = account_body(
                    f"acct_1QRecorded{len(self.accounts) + 1:06d}",
                    email=form.get("email"),
                    country=form.get("country", "US"),
                )
            return json.dumps(self.accounts[key]), 200, {"request-id": "req_recorded"}
        assert url.endswith("/v1/account_links")
        if self.fail_links:
            error = {
                "error": {
                    "message": "You requested an account link for an account that is not connected to your "
                    "platform or does not exist.",
                    "param": "account",
                    "type": "invalid_request_error",
                }
            }
            return json.dumps(error), 400, {"request-id": "req_recorded"}
        n = len(self.requests)
        body = {
            "object": "account_link",
            "created": CREATED + n,
            "expires_at": CREATED + n + 300,
            "url": f"https://connect.stripe.com/setup/e/{form['account']}/Recorded{n:04d}",
        }
        return json.dumps(body), 200, {"request-id": "req_recorded"}

    def close(self):
        pass


@pytest.fixture
def stripe_key(settings):
    settings.STRIPE_API_KEY = "sk_test_recorded"


URLS = {"refresh_url": "https://app.example.com/creators/connect/refresh", "return_url": "https://app.example.com/c"}


def test_onboarding_makes_the_account_once_and_a_fresh_link_each_time(stripe_key):
    creator = make_creator(profile=False)
    http = StripeConnectStub()
    provider = StripeConnectPayouts(http_client=http)
    first = creator_connect_onboarding_link(creator_id=creator.pk, provider=provider, **URLS)
    second = creator_connect_onboarding_link(creator_id=creator.pk, provider=provider, **URLS)
    account = PayoutProfile.objects.get(creator=creator).payout_account_id
    assert account == first["account"] == second["account"] == "acct_1QRecorded000001"
    assert first["url"] != second["url"] and first["url"].startswith("https://connect.stripe.com/setup/e/acct_")
    made, link, link2 = http.requests
    assert made["url"].endswith("/v1/accounts")
    assert made["headers"]["Idempotency-Key"] == f"creator:{creator.pk}:connect_account"
    assert made["form"]["type"] == "express" and made["form"]["capabilities[transfers][requested]"] == "true"
    assert link["form"] == {
        "account": account,
        "refresh_url": URLS["refresh_url"],
        "return_url": URLS["return_url"],
        "type": "account_onboarding",
        "collection_options[fields]": "currently_due",
    }
    assert link2["url"].endswith("/v1/account_links")
    assert AuditEvent.objects.filter(action="creator.connect_onboarding_link").count() == 2


def test_a_failed_link_keeps_the_account_and_a_retry_reuses_it(stripe_key):
    creator = make_creator(profile=False)
    http = StripeConnectStub(fail_links=True)
    with pytest.raises(Conflict) as refused:
        creator_connect_onboarding_link(creator_id=creator.pk, provider=StripeConnectPayouts(http_client=http), **URLS)
    assert refused.value.code == "provider_error" and refused.value.status == 502
    assert PayoutProfile.objects.get(creator=creator).payout_account_id == ""  # nothing recorded on failure
    http.fail_links = False
    done = creator_connect_onboarding_link(
        creator_id=creator.pk, provider=StripeConnectPayouts(http_client=http), **URLS
    )
    assert done["account"] == "acct_1QRecorded000001" and len(http.accounts) == 1  # the same key, the same account


def test_return_urls_must_be_https_and_nothing_is_called(stripe_key):
    creator = make_creator(profile=False)
    http = StripeConnectStub()
    with pytest.raises(InvalidInput):
        creator_connect_onboarding_link(
            creator_id=creator.pk,
            provider=StripeConnectPayouts(http_client=http),
            refresh_url="http://app.example.com/r",
            return_url=URLS["return_url"],
        )
    assert http.requests == []


def test_a_provider_without_hosted_onboarding_is_a_clear_conflict():
    from monetization.demo.providers import FakePayoutProvider

    creator = make_creator()
    with pytest.raises(Conflict) as refused:
        creator_connect_onboarding_link(creator_id=creator.pk, provider=FakePayoutProvider(), **URLS)
    assert refused.value.code == "unsupported_by_provider"


def test_the_onboarded_accounts_status_comes_back_through_account_updated(stripe_key):
    from .test_payouts import approved_cycle

    cycle = approved_cycle(1)
    profile = PayoutProfile.objects.get(creator_id=Payout.objects.get(cycle=cycle).creator_id)
    due = account_body(profile.payout_account_id, email="c@example.com", country="US")
    assert connect_account_updated(due).startswith("account not payable (payouts disabled)")
    assert PayoutProfile.objects.get(pk=profile.pk).requirements_due == ["external_account"]
    assert PayoutHold.objects.filter(kind=PayoutHold.Kind.CONNECT_ACCOUNT, lifted_at__isnull=True).count() == 1
    payable = account_body(profile.payout_account_id, email="c@example.com", country="US", payouts_enabled=True, due=())
    assert connect_account_updated(payable) == "account payable; 1 hold(s) lifted"
    assert not PayoutHold.objects.filter(lifted_at__isnull=True).exists()


def test_the_creator_app_asks_for_an_onboarding_link_over_the_api(stripe_key, client_with_scopes, settings):
    creator = make_creator(profile=False)
    http = StripeConnectStub()
    settings.CREATOR_PAYOUT_PROVIDER = "tests.creators.test_connect_onboarding.RecordedConnect"
    RecordedConnect.http = http
    app = client_with_scopes("creators:write")
    url = "/api/v1/creators/me/connect/onboarding-link"
    headers = {"HTTP_X_ACTING_CUSTOMER": creator.customer.external_id}
    answer = app.post(url, URLS, format="json", **headers)
    assert answer.status_code == 200, answer.content
    assert answer.json()["account"] == "acct_1QRecorded000001"
    assert answer.json()["url"].startswith("https://connect.stripe.com/setup/e/acct_1QRecorded000001/")
    bad = app.post(url, {"refresh_url": "not a url", "return_url": URLS["return_url"]}, format="json", **headers)
    assert bad.status_code == 400 and len(http.requests) == 2  # refused before Stripe is called
    reader = client_with_scopes("creators:read")
    assert reader.post(url, URLS, format="json", **headers).status_code == 403


class RecordedConnect(StripeConnectPayouts):
    """The real adapter over the recorded HTTP, as ``CREATOR_PAYOUT_PROVIDER`` names it."""

    http: StripeConnectStub

    def __init__(self):
        super().__init__(http_client=self.http)
