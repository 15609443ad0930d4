# What a payment paid for, recorded here (the money core's Payment knows no product).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('monetization', '0006_audit_fk_indexes_covered'),
        ('subscriptions', '0003_grant_and_subscription_permissions'),
    ]

    operations = [
        migrations.CreateModel(
            name='SubscriptionPayment',
            fields=[
                ('payment', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, primary_key=True, related_name='subscription_link', serialize=False, to='monetization.payment')),
                ('subscription', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='payment_links', to='subscriptions.subscription')),
            ],
            options={
                'verbose_name': 'subscription payment',
            },
        ),
        migrations.AddField(
            model_name='subscription',
            name='payments',
            field=models.ManyToManyField(blank=True, related_name='+', through='subscriptions.SubscriptionPayment', to='monetization.payment'),
        ),
    ]
