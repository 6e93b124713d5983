"""Campaign permissions for the role groups, and the ``survey_response`` touchpoint type."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CAMPAIGN_MODELS = ["plan", "planstep", "enrollment", "stepexecution", "coupon", "cstask",
                   "surveyinvitation"]
GRANTS = {
    # Marketers build, launch and read plans; every campaign model, all actions.
    "Marketer": {model: ["view", "add", "change", "delete"] for model in CAMPAIGN_MODELS},
    # Customer success works the tasks plans create and reads what plans did to an account.
    "Customer success": {
        "cstask": ["view", "change"],
        "plan": ["view"],
        "enrollment": ["view"],
        "stepexecution": ["view"],
    },
    "Admin": {model: ["view", "add", "change", "delete"] for model in CAMPAIGN_MODELS},
}


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, models in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=role)
        codenames = [f"{action}_{model}" for model, actions in models.items() for action in actions]
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="campaigns", codename__in=codenames)
        )


def add_survey_type(apps, schema_editor):
    TouchpointType = apps.get_model("customers", "TouchpointType")
    TouchpointType.objects.get_or_create(
        key="survey_response",
        defaults={
            "label": "Answered a plan survey",
            "channel": "email",
            "weight": "4.00",
            "counts_as_engagement": True,
            "description": "Recorded by the survey link of a re-engagement plan.",
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0001_initial"),
        ("customers", "0002_defaults_and_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [
        migrations.RunPython(grant, migrations.RunPython.noop),
        migrations.RunPython(add_survey_type, migrations.RunPython.noop),
    ]
