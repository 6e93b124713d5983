"""The stored, ranked renewal-risk list and its per-day totals (success.risk keeps them current)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0008_screens_indexes'),
        ('success', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='RenewalRiskRefresh',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('computed_at', models.DateTimeField()),
                ('checked_at', models.DateTimeField()),
                ('accounts', models.IntegerField(default=0)),
                ('seconds', models.FloatField(default=0.0)),
            ],
        ),
        migrations.CreateModel(
            name='RenewalRisk',
            fields=[
                ('customer', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='renewal_risk', serialize=False, to='customers.customer')),
                ('renewal_date', models.DateField()),
                ('owner_id', models.BigIntegerField(blank=True, null=True)),
                ('risk', models.FloatField(help_text='1 − P(still engaged), or 1 − score/100 without a model.')),
                ('revenue_at_risk', models.FloatField(help_text='Lifetime revenue × risk.')),
                ('computed_at', models.DateTimeField()),
            ],
            options={
                'indexes': [models.Index(fields=['-revenue_at_risk', 'customer'], name='risk_rank_idx'), models.Index(fields=['owner_id', '-revenue_at_risk', 'customer'], name='risk_owner_rank_idx')],
            },
        ),
        migrations.CreateModel(
            name='RenewalRiskDay',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('renewal_date', models.DateField()),
                ('owner_id', models.BigIntegerField(blank=True, null=True)),
                ('accounts', models.IntegerField()),
                ('revenue_at_risk', models.FloatField()),
            ],
            options={
                'indexes': [models.Index(fields=['renewal_date', 'owner_id'], name='risk_day_idx')],
            },
        ),
    ]
