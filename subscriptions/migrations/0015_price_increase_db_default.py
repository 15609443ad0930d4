from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0014_merge_20261201_0536"),
    ]

    operations = [
        migrations.AlterField(
            model_name="subscription",
            name="price_increase",
            field=models.CharField(
                blank=True,
                choices=[("", "None"), ("pending", "Pending: not answered"), ("accepted", "Accepted")],
                db_default="",
                default="",
                max_length=8,
            ),
        ),
    ]
