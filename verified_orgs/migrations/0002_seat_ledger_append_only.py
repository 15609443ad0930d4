"""The seat ledger is append-only: PostgreSQL refuses UPDATE and DELETE on it
(reusing the money core's refusal function). SQLite (the demo) gets no trigger."""

from django.db import migrations

TABLE = "verified_orgs_seatledgerentry"


def add_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
        f"FOR EACH ROW EXECUTE FUNCTION monetization_refuse_change();"
    )


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE};")


class Migration(migrations.Migration):
    dependencies = [
        ("verified_orgs", "0001_organizations_affiliations_seats"),
        ("monetization", "0003_append_only_and_roles"),
    ]

    operations = [migrations.RunPython(add_trigger, drop_trigger)]
