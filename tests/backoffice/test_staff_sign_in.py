"""Staff sign-in fit for money: lockout after 20 wrong passwords, TOTP where DEBUG is off, CSP, session expiry."""

import os
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.monetization.factories import CustomerFactory

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-enough-staff-password-1"


@pytest.fixture
def staff_member():
    return get_user_model().objects.create_user("sam", password=PASSWORD, is_staff=True, is_superuser=True)


def _sign_in(client, password, **extra):
    return client.post("/admin/login/?next=/admin/", {"username": "sam", "password": password, **extra})


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_twenty_wrong_passwords_lock_the_account(staff_member):
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(20):
        r = _sign_in(attacker, "wrong-guess")
        assert r.status_code in (200, 429) and not _signed_in(attacker)
    r = _sign_in(attacker, PASSWORD)
    assert not _signed_in(attacker)
    assert r.status_code == 429
    # The account is locked, not the address: the right password from elsewhere is refused too.
    elsewhere = Client(REMOTE_ADDR="192.0.2.1")
    _sign_in(elsewhere, PASSWORD)
    assert not _signed_in(elsewhere)


def test_a_few_wrong_passwords_do_not_lock(staff_member, client):
    for _ in range(5):
        _sign_in(client, "typo")
    r = _sign_in(client, PASSWORD)
    assert r.status_code == 302 and _signed_in(client)


@pytest.fixture
def otp_required(settings):
    settings.DEBUG = False
    settings.ADMIN_REQUIRE_OTP = True


def test_without_a_device_staff_cannot_reach_the_admin(otp_required, staff_member, client):
    r = _sign_in(client, PASSWORD)
    assert r.status_code == 200 and not _signed_in(client)  # the form asks for the second factor
    client.force_login(staff_member)  # a password-only session
    for path in ("/admin/", "/admin/monetization/customer/", "/admin/auth/user/"):
        r = client.get(path)
        assert r.status_code == 302 and r["Location"].startswith("/admin/login/"), path
    r = client.get(f"/api/v1/staff/customers/{CustomerFactory().external_id}")
    assert r.status_code == 403


def test_with_a_device_and_a_valid_token_staff_reach_the_admin(otp_required, staff_member, client):
    device = TOTPDevice.objects.create(user=staff_member, name="phone", confirmed=True)
    r = _sign_in(client, PASSWORD, otp_device=device.persistent_id, otp_token="000000")
    assert not _signed_in(client)  # a wrong token is refused
    device.refresh_from_db()
    device.throttle_reset()  # django-otp delays the next try after a failure
    token = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"
    r = _sign_in(client, PASSWORD, otp_device=device.persistent_id, otp_token=token)
    assert r.status_code == 302 and _signed_in(client)
    assert client.get("/admin/").status_code == 200
    assert client.get(f"/api/v1/staff/customers/{CustomerFactory().external_id}").status_code == 200


def test_otp_is_required_by_default_where_debug_is_off():
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "x" * 50,
        "ALLOWED_HOSTS": "backoffice.example.com",
        "REDIS_URL": "redis://127.0.0.1:6379/6",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/7",
        "PAYMENT_PROVIDERS_ENABLED": "none",
        "DJANGO_SETTINGS_MODULE": "backoffice.settings",
    }
    env.pop("ADMIN_REQUIRE_OTP", None)
    code = "import django; django.setup(); from django.conf import settings as s; print(s.ADMIN_REQUIRE_OTP, s.DEBUG)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]


def test_csp_on_the_admin_and_sessions_expire(client, settings):
    r = client.get("/admin/login/")
    policy = r["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert "Content-Security-Policy" not in client.get("/api/v1/catalog").headers
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE and settings.SESSION_COOKIE_AGE <= 12 * 3600
