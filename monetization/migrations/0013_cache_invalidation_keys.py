import django.contrib.postgres.fields
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monetization", "0012_merge_exchange_rates"),
    ]

    operations = [
        # One row per invalidation, however many keys: the sweep writes one per chunk slice.
        migrations.AddField(
            model_name="cacheinvalidation",
            name="keys",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(max_length=300), db_default=[], default=list, size=None
            ),
        ),
        migrations.AlterField(
            model_name="cacheinvalidation",
            name="key",
            field=models.CharField(blank=True, db_default="", default="", max_length=300),
        ),
    ]
