"""Screens at a million customers: the dashboard's summary rows and the indexes its queries
use (plans in docs/performance.md, "Screens")."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0007_ingest_constraints'),
    ]

    operations = [
        migrations.CreateModel(
            name='DashboardSummary',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('computed_at', models.DateTimeField()),
                ('customers', models.BigIntegerField(default=0)),
                ('stage_counts', models.JSONField(default=dict)),
                ('flows', models.JSONField(default=list)),
                ('flow_days', models.IntegerField(default=30)),
                ('score_edges', models.JSONField(default=list)),
                ('score_counts', models.JSONField(default=list)),
                ('disengaging_customers', models.BigIntegerField(default=0)),
                ('disengaging_revenue', models.DecimalField(decimal_places=2, default=0, max_digits=18)),
                ('disengaging_top', models.JSONField(default=list)),
                ('disengaging_days', models.IntegerField(default=7)),
                ('seconds', models.FloatField(default=0.0, help_text='Time the refresh took.')),
            ],
            options={
                'get_latest_by': 'id',
            },
        ),
        migrations.AddIndex(
            model_name='customer',
            index=models.Index(fields=['name', 'id'], name='customer_name_idx'),
        ),
        migrations.AddIndex(
            model_name='engagement',
            index=models.Index(condition=models.Q(('stage__in', ['cooling', 'at_risk'])), fields=['stage_since'], name='engagement_slipping_since_idx'),
        ),
    ]
