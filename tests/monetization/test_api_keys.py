"""Issuing and revoking client-app API keys: service, command, admin."""

import io
import re

import pytest
from django.core.management import CommandError, call_command

from monetization.errors import Conflict, InvalidInput
from monetization.models import ApiKey, AuditEvent
from monetization.services.api_keys import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db

KEY_RE = re.compile(r"^bo_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


def test_create_stores_only_the_hash_and_audits():
    full, key = api_key_create(name="ios-app", scopes=["entitlements:read", "catalog:read"])
    assert KEY_RE.match(full)
    assert key.key_hash == ApiKey.hash_secret(full) and full not in key.key_hash
    assert key.scopes == ["catalog:read", "entitlements:read"]
    event = AuditEvent.objects.get(action="api_key.create", object_id=str(key.pk))
    assert "key_hash" not in event.after and key.key_hash not in str(event.after)


@pytest.mark.parametrize(("name", "scopes"), [("ios", ["admin:all"]), ("ios", []), ("  ", ["catalog:read"])])
def test_create_refuses_bad_input_and_writes_nothing(name, scopes):
    with pytest.raises(InvalidInput):
        api_key_create(name=name, scopes=scopes)
    assert not ApiKey.objects.exists() and not AuditEvent.objects.exists()


def test_revoke_marks_audits_and_refuses_twice(admin_user):
    _, key = api_key_create(name="android", scopes=["catalog:read"])
    revoked = api_key_revoke(key=key, revoked_by=admin_user, reason="leaked in a crash log")
    assert revoked.revoked_at is not None
    event = AuditEvent.objects.get(action="api_key.revoke")
    assert event.actor == admin_user and event.reason == "leaked in a crash log"
    with pytest.raises(Conflict):
        api_key_revoke(key=key, revoked_by=admin_user)


def test_command_prints_key_once():
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_api_key", "web-app", "--scope", "catalog:read", "--scope", "purchases:write", stdout=out, stderr=err
    )
    full = out.getvalue().strip()
    assert KEY_RE.match(full)
    key = ApiKey.objects.get()
    assert key.name == "web-app" and key.scopes == ["catalog:read", "purchases:write"]
    assert key.key_hash == ApiKey.hash_secret(full)
    assert full not in err.getvalue()


def test_command_refuses_unknown_scope():
    with pytest.raises(CommandError):
        call_command("create_api_key", "x", "--scope", "everything", stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiKey.objects.exists()


def test_admin_creates_through_service_shows_key_once_and_never_the_hash(admin_client):
    response = admin_client.post(
        "/admin/monetization/apikey/add/", {"name": "ios-app", "scopes": ["entitlements:read", "catalog:read"]}
    )
    assert response.status_code == 200
    key = ApiKey.objects.get()
    html = response.content.decode()
    match = re.search(r"bo_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", html)
    assert match and ApiKey.hash_secret(match.group(0)) == key.key_hash
    assert "no-store" in response["Cache-Control"]
    assert AuditEvent.objects.filter(action="api_key.create").count() == 1
    # The change page and the list never show the key or its hash.
    for url in ("/admin/monetization/apikey/", f"/admin/monetization/apikey/{key.pk}/change/"):
        page = admin_client.get(url).content.decode()
        assert key.key_hash not in page and match.group(0) not in page
    assert admin_client.get(f"/admin/monetization/apikey/{key.pk}/delete/").status_code == 403


def test_admin_revoke_action(admin_client):
    _, key = api_key_create(name="ios", scopes=["catalog:read"])
    response = admin_client.post(
        "/admin/monetization/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]}, follow=True
    )
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is not None
