"""Monthly engagement partitions, created for the app role by a function that runs as the owner.

Creating a partition needs ownership of the partitioned table, which the app role (see
monetization 0008) deliberately lacks. ``creators_engagement_partition(start)`` creates the
month starting at ``start`` and nothing else: SECURITY DEFINER with a fixed search_path.
"""

from django.conf import settings
from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION creators_engagement_partition(start date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF start <> date_trunc('month', start)::date THEN
        RAISE EXCEPTION 'a partition starts on the first of a month, not %', start;
    END IF;
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF creators_dailyengagement FOR VALUES FROM (%L) TO (%L)',
        'creators_dailyengagement_y' || to_char(start, 'YYYY') || 'm' || to_char(start, 'MM'),
        start, (start + interval '1 month')::date
    );
END;
$$;
REVOKE ALL ON FUNCTION creators_engagement_partition(date) FROM PUBLIC;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FORWARD, params=None)
    role = schema_editor.connection.ops.quote_name(settings.DATABASE_APP_ROLE)
    schema_editor.execute(f"GRANT EXECUTE ON FUNCTION creators_engagement_partition(date) TO {role}", params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP FUNCTION IF EXISTS creators_engagement_partition(date)", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("creators", "0003_drop_faketransfer"),
        ("monetization", "0008_guard_app_role"),
    ]

    operations = [migrations.RunPython(forward, backward)]
