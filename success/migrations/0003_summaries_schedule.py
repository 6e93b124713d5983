"""Screens' summary refresh every minute, stored in django-celery-beat's tables so admins can
edit it. The task itself only recomputes what is due (an engine job finished, or 10 minutes
passed), so most runs do nothing."""

from django.db import migrations

NAME = "Screens: refresh dashboard summary and renewal-risk list"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": "screens.refresh_summaries",
            "interval": every_minute,
            "expire_seconds": 55,
            "description": "Whole-table figures of the dashboard and the ranked renewal-risk "
            "list, recomputed off the request path when an engine job has run.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("success", "0002_renewal_risk_rank"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_schedule, remove_schedule)]
