from django.db import migrations, models

import monetization.clock


class Migration(migrations.Migration):
    dependencies = [
        ("monetization", "0006_audit_fk_indexes_covered"),
    ]

    operations = [
        migrations.CreateModel(
            name="CacheInvalidation",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=300)),
                ("created_at", models.DateTimeField(default=monetization.clock.now)),
            ],
        ),
    ]
