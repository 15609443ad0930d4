"""The audit row is the event: the writing transaction's id on every audit row, and the relay's place.

Ids are taken before commit, so a cursor over audit ids would skip a row whose transaction commits after a
later id's; rows written by transactions older than every transaction still running are final, and
(txid, id) orders them (monetization.services.outbox.outbox_relay). Not a model field: only the relay reads
it, in SQL; the default fills it on every insert. Rows written before this migration keep NULL: the old
writer already published their events, and the relay's comparison never matches NULL.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monetization", "0021_finance_snapshot_indexes"),
    ]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE monetization_auditevent ADD COLUMN txid xid8; "
            "ALTER TABLE monetization_auditevent ALTER COLUMN txid SET DEFAULT pg_current_xact_id(); "
            "CREATE INDEX audit_txid_id_idx ON monetization_auditevent (txid, id);",
            "DROP INDEX audit_txid_id_idx; ALTER TABLE monetization_auditevent DROP COLUMN txid;",
        ),
        migrations.CreateModel(
            name="OutboxRelay",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("txid", models.BigIntegerField(default=0)),
                ("audit_id", models.BigIntegerField(default=0)),
                ("relayed_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
    ]
