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


def test_check_deploy_is_clean_with_production_settings():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DEBUG="0",
        SECRET_KEY="a-long-random-production-secret-key-" + "x9Zq" * 10,
        ALLOWED_HOSTS="backoffice.example.com",
        DJANGO_SETTINGS_MODULE="monetization.settings",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr and "no issues" in result.stdout


def test_settings_refuse_to_start_without_secret_key_when_debug_is_off():
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    env["DEBUG"] = "0"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


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


def test_make_run_path_works_on_sqlite(tmp_path):
    """The demo's path (migrate + seed_demo on the embedded SQLite database) works, twice."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}")
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
