"""Seed idempotency, production checks and the API schema."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command

from monetization.demo.customers import demo_password

ROOT = Path(__file__).resolve().parents[2]


def _counts():
    return {m._meta.label: m.objects.count() for m in apps.get_models() if m._meta.app_label != "sessions"}


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_prints_logins(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    out = io.StringIO()
    call_command("seed_demo", "--customers", "200", stdout=out)
    first = _counts()
    call_command("seed_demo", "--customers", "200", stdout=io.StringIO())
    assert _counts() == first
    assert first["monetization.Customer"] == 200
    assert first["monetization.ProviderIdentity"] >= 150
    assert first["subscriptions.Product"] == 5
    assert first["subscriptions.ExperimentExposure"] == 200 and first["subscriptions.PromoRedemption"] == 25
    text = out.getvalue()
    User = get_user_model()
    for username, role in (("support", "Support"), ("finance", "Finance"), ("compliance", "Compliance")):
        assert username in text and demo_password(username) in text
        user = User.objects.get(username=username)
        assert user.is_staff and not user.is_superuser
        assert list(user.groups.values_list("name", flat=True)) == [role]
        assert user.check_password(demo_password(username))
    assert User.objects.get(username="admin").is_superuser


@pytest.mark.django_db
def test_seed_extends_the_same_customers(settings):
    from monetization.models import Customer

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("seed_demo", "--customers", "50", stdout=io.StringIO())
    first = set(Customer.objects.values_list("external_id", flat=True))
    call_command("seed_demo", "--customers", "80", stdout=io.StringIO())
    after = set(Customer.objects.values_list("external_id", flat=True))
    assert first < after and len(after) == 80


# Everything a production deployment sets, with made-up values (nothing here is contacted).
PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "a-long-random-production-secret-key-" + "x9Zq" * 10,
    "ALLOWED_HOSTS": "backoffice.example.com",
    "DATABASE_URL": "postgres://backoffice@db.example.com:5432/backoffice",
    "REDIS_URL": "redis://cache.example.com:6379/0",
    "CELERY_BROKER_URL": "redis://broker.example.com:6379/1",
    "STRIPE_API_KEY": "sk_live_example",
    "STRIPE_WEBHOOK_SECRET": "whsec_example",
    "APP_STORE_BUNDLE_ID": "com.example.app",
    "APP_STORE_APP_APPLE_ID": "1234567890",
    "APP_STORE_ROOT_CERTS": "/etc/backoffice/AppleRootCA-G3.cer",
    "APP_STORE_KEY_ID": "ABCDEFGHIJ",
    "APP_STORE_ISSUER_ID": "57246542-96fe-1a63-e053-0824d011072a",
    "APP_STORE_PRIVATE_KEY_PATH": "/etc/backoffice/SubscriptionKey.p8",
    "GOOGLE_PLAY_PACKAGE_NAME": "com.example.app",
    "GOOGLE_PLAY_PUSH_TOKEN": "push-token-example",
    "GOOGLE_PLAY_CREDENTIALS_FILE": "/etc/backoffice/play-service-account.json",
}


def _manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    """``manage.py`` in a fresh process with exactly ``env`` on top of the bare system environment."""
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr and "no issues" in result.stdout


@pytest.mark.parametrize(
    "variable",
    [
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "REDIS_URL",
        "STRIPE_WEBHOOK_SECRET",
        "APP_STORE_ROOT_CERTS",
        "GOOGLE_PLAY_PUSH_TOKEN",
    ],
)
def test_start_up_stops_naming_a_missing_variable_when_debug_is_off(variable):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != variable}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and f"Missing environment variables: {variable}." in result.stderr


def test_start_up_names_every_missing_variable_at_once():
    result = _manage("check", env={"DEBUG": "0"})
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    for variable in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "STRIPE_API_KEY"):
        assert variable in message


def test_a_provider_left_out_needs_no_credentials():
    play_only = {k: v for k, v in PRODUCTION_ENV.items() if not k.startswith(("STRIPE_", "APP_STORE_"))}
    result = _manage("check", env={**play_only, "PAYMENT_PROVIDERS_ENABLED": "google_play"})
    assert result.returncode == 0, result.stderr
    result = _manage("check", env={**play_only, "PAYMENT_PROVIDERS_ENABLED": "google_play,stripe"})
    assert result.returncode != 0 and "STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET." in result.stderr
    result = _manage("check", env={**PRODUCTION_ENV, "PAYMENT_PROVIDERS_ENABLED": "paypal"})
    assert result.returncode != 0 and "PAYMENT_PROVIDERS_ENABLED" in result.stderr


def test_the_database_is_postgresql_even_with_debug_on():
    result = _manage("check", env={"DEBUG": "1"})
    assert result.returncode != 0 and "Missing environment variables: DATABASE_URL." in result.stderr
    result = _manage("check", env={"DEBUG": "1", "DATABASE_URL": "sqlite:///demo.sqlite3"})
    assert result.returncode != 0 and "PostgreSQL" in result.stderr


def test_debug_on_runs_without_broker_cache_or_provider_credentials():
    result = _manage("check", env={"DEBUG": "1", "DATABASE_URL": PRODUCTION_ENV["DATABASE_URL"]})
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_openapi_schema_generates_without_warnings():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    assert '"/api/v1/customers/{external_id}/entitlements"' in out.getvalue()
    assert '"/api/v1/catalog"' in out.getvalue()


@pytest.mark.django_db
def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


@pytest.fixture
def fresh_database(django_db_blocker):
    """An empty database of its own on the tests' PostgreSQL server; its DATABASE_URL. Dropped afterwards."""
    import psycopg
    from django.db import connection

    from tests.processes import database_url

    params = connection.get_connection_params()
    name = f"{connection.settings_dict['NAME']}_demo"
    with django_db_blocker.unblock(), psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield database_url(connection.settings_dict, name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_make_run_path_works_on_postgresql(fresh_database):
    """The demo's path (migrate + seed_demo on an empty database, as make run does), twice."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(
        DEBUG="1", DATABASE_URL=fresh_database, CREATOR_PAYOUT_PROVIDER="monetization.demo.providers.FakePayoutProvider"
    )
    for command in (
        ["migrate", "--noinput", "-v0"],
        ["seed_demo", "--customers", "60"],
        ["seed_demo", "--customers", "60"],
    ):
        result = subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "demo-support-2026" in result.stdout and "Demo data ready." in result.stdout
