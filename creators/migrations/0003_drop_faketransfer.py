# The payout test double keeps its transfers in the demo's memory or a test's file, not in the
# production schema.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('creators', '0002_partition_daily_engagement'),
    ]

    operations = [
        migrations.DeleteModel(
            name='FakeTransfer',
        ),
    ]
