"""Erasure requests, and the one way personal data leaves the append-only tables.

The audit trail and the journal stay append-only: their trigger now lets an UPDATE through only
when it comes from ``monetization_pseudonymize()`` (which raises a transaction-local flag for its
own statement) and changes nothing but the table's named personal columns (the trigger's
arguments): the audit trail's actor label, before/after and reason, a journal entry's memo.
Amounts, dates, accounts and keys cannot change, whoever asks. The function is SECURITY DEFINER,
so the app role, which may not UPDATE these tables at all, can pseudonymize through it and
nothing else. ``monetization_scrub_jsonb()`` replaces matches inside JSON string values only,
so keys and structure stay as they were.
"""

import django.db.models.deletion
import django_fsm
import monetization.clock
import monetization.models.privacy
from django.conf import settings
from django.db import migrations, models


SCRUB_SQL = r"""
CREATE OR REPLACE FUNCTION monetization_scrub_jsonb(j jsonb, pattern text, marker text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF j IS NULL THEN
        RETURN NULL;
    END IF;
    CASE jsonb_typeof(j)
    WHEN 'string' THEN
        RETURN to_jsonb(regexp_replace(j #>> '{}', pattern, marker, 'gi'));
    WHEN 'object' THEN
        RETURN COALESCE(
            (SELECT jsonb_object_agg(k, monetization_scrub_jsonb(v, pattern, marker)) FROM jsonb_each(j) AS e(k, v)),
            '{}'::jsonb
        );
    WHEN 'array' THEN
        RETURN COALESCE(
            (SELECT jsonb_agg(monetization_scrub_jsonb(v, pattern, marker) ORDER BY i)
             FROM jsonb_array_elements(j) WITH ORDINALITY AS a(v, i)),
            '[]'::jsonb
        );
    ELSE
        RETURN j;
    END CASE;
END;
$$;

CREATE OR REPLACE FUNCTION monetization_append_only_guard() RETURNS trigger AS $$
BEGIN
    -- TG_ARGV: the columns pseudonymization may rewrite; every other column must stay as it was.
    IF TG_OP = 'UPDATE' AND current_setting('monetization.pseudonymizing', true) = 'on'
       AND (to_jsonb(NEW) - TG_ARGV) = (to_jsonb(OLD) - TG_ARGV) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION monetization_pseudonymize(
    p_table regclass, p_ids bigint[], p_columns text[], p_pattern text, p_marker text
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    col text;
    col_type text;
    sets text[] := '{}';
    matches text[] := '{}';
    changed bigint;
BEGIN
    IF p_table NOT IN ('monetization_auditevent'::regclass, 'monetization_journalentry'::regclass) THEN
        RAISE EXCEPTION 'pseudonymize: % is not an append-only table with personal columns', p_table;
    END IF;
    FOREACH col IN ARRAY p_columns LOOP
        SELECT format_type(atttypid, atttypmod) INTO col_type
        FROM pg_attribute WHERE attrelid = p_table AND attname = col AND attnum > 0 AND NOT attisdropped;
        IF col_type IS NULL THEN
            RAISE EXCEPTION 'pseudonymize: no column % on %', col, p_table;
        END IF;
        IF col_type = 'jsonb' THEN
            sets := sets || format('%I = monetization_scrub_jsonb(%I, $2, $3)', col, col);
            matches := matches || format('%I::text ~* $2', col);
        ELSE
            sets := sets || format('%I = regexp_replace(%I, $2, $3, ''gi'')', col, col);
            matches := matches || format('%I ~* $2', col);
        END IF;
    END LOOP;
    PERFORM set_config('monetization.pseudonymizing', 'on', true);
    EXECUTE format(
        'UPDATE %s SET %s WHERE id = ANY($1) AND (%s)',
        p_table, array_to_string(sets, ', '), array_to_string(matches, ' OR ')
    ) USING p_ids, p_pattern, p_marker;
    GET DIAGNOSTICS changed = ROW_COUNT;
    PERFORM set_config('monetization.pseudonymizing', 'off', true);
    RETURN changed;
END;
$$;
"""

# The personal columns of each append-only table: the only ones pseudonymization may rewrite.
PERSONAL_COLUMNS = {
    "monetization_auditevent": ["actor_label", "before", "after", "reason"],
    "monetization_journalentry": ["memo"],
}


def guard_forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(SCRUB_SQL, params=None)
    for table, columns in PERSONAL_COLUMNS.items():
        args = ", ".join(f"'{c}'" for c in columns)
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION monetization_append_only_guard({args});"
        )
    role = schema_editor.connection.ops.quote_name(settings.DATABASE_APP_ROLE)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [settings.DATABASE_APP_ROLE])
        app_role_exists = cursor.fetchone() is not None
    if app_role_exists:
        schema_editor.execute(
            "REVOKE ALL ON FUNCTION monetization_pseudonymize(regclass, bigint[], text[], text, text) FROM PUBLIC"
        )
        schema_editor.execute(
            f"GRANT EXECUTE ON FUNCTION monetization_pseudonymize(regclass, bigint[], text[], text, text) TO {role}"
        )


def guard_backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in PERSONAL_COLUMNS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table};")
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION monetization_refuse_change();"
        )
    schema_editor.execute("DROP FUNCTION IF EXISTS monetization_pseudonymize(regclass, bigint[], text[], text, text);")
    schema_editor.execute("DROP FUNCTION IF EXISTS monetization_append_only_guard();")
    schema_editor.execute("DROP FUNCTION IF EXISTS monetization_scrub_jsonb(jsonb, text, text);")


class Migration(migrations.Migration):

    dependencies = [
        ('monetization', '0016_customer_trigram_search'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ErasureRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('state', django_fsm.FSMField(choices=[('requested', 'Requested'), ('in_progress', 'In progress'), ('done', 'Done'), ('rejected', 'Rejected')], default='requested', max_length=50, protected=True)),
                ('requested_at', models.DateTimeField(default=monetization.clock.now)),
                ('due_at', models.DateTimeField(default=monetization.models.privacy.erasure_due_at, help_text='The legal deadline: 30 days after the request.')),
                ('reason', models.TextField(help_text='How the request reached us (channel, date, reference).')),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('decided_reason', models.TextField(blank=True)),
                ('outcome', models.JSONField(blank=True, default=dict)),
                ('customer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='monetization.customer')),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('requested_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('started_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['due_at', 'id'],
                'permissions': [('execute_erasurerequest', 'Can execute or reject an erasure request'), ('export_personal_data', 'Can export everything held on a customer')],
                'indexes': [models.Index(condition=models.Q(('state__in', ['requested', 'in_progress'])), fields=['due_at'], name='erasure_open_due_idx')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('state__in', ['requested', 'in_progress'])), fields=('customer',), name='uniq_open_erasure_per_customer')],
            },
            bases=(django_fsm.FSMModelMixin, models.Model),
        ),
        migrations.RunPython(guard_forward, guard_backward, elidable=False),
    ]
