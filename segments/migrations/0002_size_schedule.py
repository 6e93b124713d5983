"""Daily segment-size record, stored in django-celery-beat's tables so admins can edit it."""

from django.db import migrations

NAME = "Segments: record daily sizes"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    # After the nightly engine pass (02:30 UTC), so sizes reflect the night's stages.
    quarter_past_four, _ = CrontabSchedule.objects.get_or_create(
        minute="15", hour="4", day_of_week="*", day_of_month="*", month_of_year="*",
        timezone="UTC",
    )
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={"task": "segments.record_sizes", "crontab": quarter_past_four,
                  "expire_seconds": 6 * 3600,
                  "description": "Each segment's size today, for the size-trend charts."},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("segments", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_schedule, remove_schedule)]
