"""On PostgreSQL, DailyEngagement becomes a table RANGE-partitioned by month on ``day``.

Why: a cycle reads one month, so partition pruning turns the cycle aggregate into a
sequential scan of one partition, with no secondary index to maintain on the hot
ingestion path; old months detach instead of being deleted row by row. The primary key
(creator_id, day, source) is kept on every partition (it is the ingestion idempotency
key and serves per-creator reads). Partitions are created on demand by
``creators.services.engagement.ensure_engagement_partitions``; there is deliberately no
DEFAULT partition (rows in it would block creating the matching month later).
SQLite (the demo) keeps the plain table Django created.
"""

from django.db import migrations

TABLE = "creators_dailyengagement"


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP TABLE {TABLE}")
    schema_editor.execute(
        f"""
        CREATE TABLE {TABLE} (
            creator_id bigint NOT NULL,
            day date NOT NULL,
            source varchar(32) NOT NULL,
            impressions bigint NOT NULL DEFAULT 0,
            replies bigint NOT NULL DEFAULT 0,
            likes bigint NOT NULL DEFAULT 0,
            reposts bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (creator_id, day, source)
        ) PARTITION BY RANGE (day)
        """
    )


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP TABLE {TABLE}")
    schema_editor.execute(
        f"""
        CREATE TABLE {TABLE} (
            creator_id bigint NOT NULL, day date NOT NULL, source varchar(32) NOT NULL,
            impressions bigint NOT NULL, replies bigint NOT NULL, likes bigint NOT NULL, reposts bigint NOT NULL,
            PRIMARY KEY (creator_id, day, source)
        )
        """
    )


class Migration(migrations.Migration):
    dependencies = [
        ("creators", "0001_creator_revenue_sharing"),
    ]

    operations = [
        migrations.RunPython(partition, unpartition),
    ]
