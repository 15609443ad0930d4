from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0011_merge_0007_offerings_0010_price_changes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="subscription",
            index=models.Index(
                condition=models.Q(("trial_end__isnull", False)),
                fields=["started_at"],
                name="subscription_trial_start_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="subscription",
            index=models.Index(
                condition=models.Q(("trial_end__isnull", False)),
                fields=["trial_end"],
                name="subscription_trial_end_idx",
            ),
        ),
    ]
