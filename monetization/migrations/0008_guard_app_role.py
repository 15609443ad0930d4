"""Two database roles: the owner that migrates (whoever runs this) and the app role that runs.

The app role (settings.DATABASE_APP_ROLE, ``backoffice_app``) reads and writes rows and nothing
else: no TRUNCATE, no TRIGGER, and, owning no table, no DDL, so it can neither empty nor
disable the triggers that keep the ledger and the audit trail append-only. It is created
NOLOGIN when missing (give it a password and LOGIN for production, or make it a member of
a login role); tables the owner creates later get the same grants (default privileges).
On the ledger and audit tables it may only read and append.
"""

from django.conf import settings
from django.db import migrations

APPEND_ONLY_TABLES = ["monetization_journalentry", "monetization_journalline", "monetization_auditevent"]


def grant(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    role = schema_editor.connection.ops.quote_name(settings.DATABASE_APP_ROLE)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [settings.DATABASE_APP_ROLE])
        if cursor.fetchone() is None:
            # Roles are cluster-wide: another database's migration may create it at the same moment.
            cursor.execute(
                f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
            )
        cursor.execute("SELECT current_database(), current_schema()")
        database, schema = (schema_editor.connection.ops.quote_name(x) for x in cursor.fetchone())
    for sql in [
        f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}",
        f"GRANT USAGE ON SCHEMA {schema} TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
        *(f"REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER ON {table} FROM {role}" for table in APPEND_ONLY_TABLES),
    ]:
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("monetization", "0007_guard_cache_invalidations"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop, elidable=False)]
