"""The plan tick on beat every minute, stored in django-celery-beat's tables (admin-editable)."""

from django.db import migrations

TICK = "Plans: tick (enrol, due steps, exits) and dispatch"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TICK,
        defaults={
            "task": "campaigns.tick",
            "interval": every_minute,
            # A tick that waited longer than its period is superseded by the next one.
            "expire_seconds": 55,
            "description": "Enrol triggered customers, create due step executions, close "
            "re-engaged or exhausted enrollments, then dispatch the outbox.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TICK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_roles_and_survey_type"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(create_schedule, remove_schedule)]
