"""The app's database role cannot empty the ledger or the audit trail, nor touch their triggers."""

import datetime

import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from creators.services.engagement import ensure_engagement_partitions

pytestmark = pytest.mark.django_db

PROTECTED = ["monetization_journalentry", "monetization_journalline", "monetization_auditevent"]


def as_app_role(sql: str):
    """Run ``sql`` as the app role inside a savepoint; the error PostgreSQL raises, or None."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL ROLE {connection.ops.quote_name(settings.DATABASE_APP_ROLE)}")
            cursor.execute(sql)
    except DatabaseError as exc:
        return exc
    return None


def _refused(exc) -> bool:
    return exc is not None and getattr(exc.__cause__, "sqlstate", None) == "42501"  # insufficient_privilege


@pytest.mark.parametrize("table", PROTECTED)
@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE {table}",
        "TRUNCATE {table} CASCADE",
        "ALTER TABLE {table} DISABLE TRIGGER ALL",
        "ALTER TABLE {table} DISABLE TRIGGER {table}_append_only",
        "DROP TRIGGER {table}_append_only ON {table}",
        "ALTER TABLE {table} ADD COLUMN sneaky int",
        "DROP TABLE {table} CASCADE",
        "DELETE FROM {table}",
        "CREATE TRIGGER sneaky BEFORE INSERT ON {table} FOR EACH ROW"
        " EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    ],
)
def test_app_role_is_refused_on_ledger_and_audit(table, statement):
    exc = as_app_role(statement.format(table=table))
    assert _refused(exc), exc


def test_app_role_reads_and_appends():
    assert as_app_role("SELECT count(*) FROM monetization_auditevent") is None
    assert as_app_role("SELECT count(*) FROM monetization_journalline") is None
    assert (
        as_app_role(
            "INSERT INTO monetization_auditevent (occurred_at, actor_kind, actor_label, action, object_type,"
            " object_id, reason, request_id) VALUES (now(), 'system', 'test', 'test.role', '', '', '', '')"
        )
        is None
    )
    assert as_app_role("INSERT INTO monetization_cacheinvalidation (key, created_at) VALUES ('k', now())") is None
    assert as_app_role("UPDATE monetization_customer SET handle = handle") is None


def test_app_role_creates_engagement_partitions_through_the_owner_function():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {connection.ops.quote_name(settings.DATABASE_APP_ROLE)}")
        ensure_engagement_partitions([(2031, 12)])
        cursor.execute("SELECT count(*) FROM creators_dailyengagement WHERE day >= %s", [datetime.date(2031, 12, 1)])
        assert cursor.fetchone() == (0,)
