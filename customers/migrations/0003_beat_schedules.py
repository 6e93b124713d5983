"""Default engine schedules, stored in django-celery-beat's tables so admins can edit them."""

from django.db import migrations

REFRESH = "Engagement: incremental refresh"
NIGHTLY = "Engagement: nightly pass (refit, stages, snapshot)"


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_two_minutes, _ = IntervalSchedule.objects.get_or_create(every=2, period="minutes")
    half_past_two, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="2", day_of_week="*", day_of_month="*", month_of_year="*",
        timezone="UTC",
    )
    PeriodicTask.objects.get_or_create(
        name=REFRESH,
        defaults={"task": "customers.refresh", "interval": every_two_minutes,
                  "expire_seconds": 110,
                  "description": "Apply new touchpoints; move customers whose stage is due."},
    )
    PeriodicTask.objects.get_or_create(
        name=NIGHTLY,
        defaults={"task": "customers.nightly", "crontab": half_past_two,
                  "expire_seconds": 3 * 3600,
                  "description": "Refit the model; P(still engaged), stage, trend, snapshot."},
    )


def remove_schedules(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[REFRESH, NIGHTLY]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0002_defaults_and_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_schedules, remove_schedules)]
