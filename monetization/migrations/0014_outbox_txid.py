"""The outbox's commit-safe cursor: the writing transaction's id.

Ids are taken before commit, so an id cursor would skip an event whose transaction commits after
a later id's. Events written by transactions older than every transaction still running are final,
and (txid, id) orders them (monetization.selectors_outbox).
Not a model field: only the pull API reads it, in SQL; the default fills it on every insert.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("monetization", "0013_outbox")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE monetization_outboxevent ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id(); "
            "CREATE INDEX outbox_txid_id_idx ON monetization_outboxevent (txid, id);",
            "DROP INDEX outbox_txid_id_idx; ALTER TABLE monetization_outboxevent DROP COLUMN txid;",
        )
    ]
