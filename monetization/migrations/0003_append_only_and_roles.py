"""Database-enforced money safety, and the staff groups.

- The ledger (journal entries and lines) and the audit trail are append-only:
  PostgreSQL refuses UPDATE and DELETE on them, whoever asks (ORM, raw SQL,
  the admin, a superuser's shell). TRUNCATE stays possible for test teardown.
- Journal lines must balance per entry and currency; a statement-level trigger
  checks each INSERT statement's new lines as a set, so bulk posting costs one
  check per statement rather than one per row.
- The staff groups are created here; monetization.roles keeps their
  permissions exact after every migrate.

SQLite (the demo default) gets no triggers: it is not a production database.
"""

from django.db import migrations

APPEND_ONLY_TABLES = ["monetization_journalentry", "monetization_journalline", "monetization_auditevent"]

FORWARD_SQL = """
CREATE OR REPLACE FUNCTION monetization_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION monetization_check_journal_balance() RETURNS trigger AS $$
DECLARE
    bad record;
BEGIN
    SELECT entry_id, currency, SUM(amount) AS total INTO bad
    FROM new_lines GROUP BY entry_id, currency HAVING SUM(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: %', bad.entry_id, bad.currency, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER monetization_journalline_balanced
    AFTER INSERT ON monetization_journalline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION monetization_check_journal_balance();
"""

BACKWARD_SQL = """
DROP TRIGGER IF EXISTS monetization_journalline_balanced ON monetization_journalline;
DROP FUNCTION IF EXISTS monetization_check_journal_balance();
"""


def add_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FORWARD_SQL, params=None)
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION monetization_refuse_change();"
        )


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
    schema_editor.execute(BACKWARD_SQL)
    schema_editor.execute("DROP FUNCTION IF EXISTS monetization_refuse_change();")


def create_groups(apps, schema_editor):
    from monetization.roles import ROLES

    Group = apps.get_model("auth", "Group")
    for role in ROLES:
        Group.objects.get_or_create(name=role)


class Migration(migrations.Migration):
    dependencies = [
        ("monetization", "0002_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(add_triggers, drop_triggers),
        migrations.RunPython(create_groups, migrations.RunPython.noop),
    ]
