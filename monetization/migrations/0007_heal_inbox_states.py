import django_fsm
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monetization", "0006_audit_fk_indexes_covered"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookevent",
            name="last_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="next_attempt_at",
            field=models.DateTimeField(
                blank=True, help_text="When the sweep queues it again, unless it is finished by then.", null=True
            ),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="waiting_for",
            field=models.CharField(
                blank=True, db_default="", default="", help_text="The subject it waits for (waiting).", max_length=512
            ),
        ),
        migrations.AlterField(
            model_name="webhookevent",
            name="status",
            field=django_fsm.FSMField(
                choices=[
                    ("received", "Received"),
                    ("applied", "Applied"),
                    ("failed", "Failed"),
                    ("ignored", "Ignored"),
                    ("waiting", "Waiting for its subject"),
                    ("retrying", "Retrying"),
                ],
                default="received",
                max_length=50,
                protected=True,
            ),
        ),
        # Events stored before the sweep existed and still not applied are due now.
        migrations.RunSQL(
            "UPDATE monetization_webhookevent SET next_attempt_at = now() WHERE status = 'received'",
            migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name="webhookevent",
            index=models.Index(
                condition=models.Q(("status__in", ["received", "waiting", "retrying"])),
                fields=["next_attempt_at"],
                name="webhook_due_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="webhookevent",
            index=models.Index(
                condition=models.Q(("status", "waiting")),
                fields=["provider", "waiting_for"],
                name="webhook_waiting_for_idx",
            ),
        ),
    ]
