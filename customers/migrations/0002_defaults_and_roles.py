"""Default touchpoint types and weights, the engagement settings row, and the staff roles."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# key, label, channel, weight, counts as engagement action
DEFAULT_TYPES = [
    ("email_open", "Email opened", "email", "1.00", True),
    ("email_click", "Email link clicked", "email", "2.00", True),
    ("email_bounce", "Email bounced", "email", "-1.00", False),
    ("unsubscribe", "Unsubscribed", "email", "-10.00", False),
    ("page_view", "Page viewed", "web", "0.50", True),
    ("webinar", "Webinar attended", "web", "5.00", True),
    ("login", "Logged in", "product", "3.00", True),
    ("product_use", "Used a key feature", "product", "2.00", True),
    ("trial_start", "Started a trial", "product", "5.00", True),
    ("social_mention", "Mentioned us on social", "social", "2.00", True),
    ("phone_call", "Called us", "phone", "4.00", True),
    ("cs_call", "Customer-success call", "phone", "1.00", False),
    ("demo", "Attended a demo", "in_person", "8.00", True),
    ("meeting", "Meeting", "in_person", "6.00", True),
    ("support_case", "Opened a support case", "support", "1.00", True),
    ("complaint", "Complaint", "support", "-5.00", False),
    ("survey_answer", "Answered a survey", "support", "4.00", True),
    ("purchase", "Purchase", "billing", "10.00", True),
]

VIEW = "view"
ROLE_PERMISSIONS = {
    # codename prefixes per model label; Admin gets every permission of these apps.
    "Marketer": {
        "customers.customer": ["view"],
        "customers.touchpoint": ["view"],
        "customers.touchpointtype": ["view"],
        "customers.engagement": ["view"],
        "customers.engagementsettings": ["view"],
    },
    "Customer success": {
        "customers.customer": ["view", "change"],
        "customers.touchpoint": ["view", "add"],
        "customers.touchpointtype": ["view"],
        "customers.engagement": ["view"],
    },
}
ADMIN_APPS = ["customers", "campaigns", "django_celery_beat"]


def create_defaults(apps, schema_editor):
    TouchpointType = apps.get_model("customers", "TouchpointType")
    EngagementSettings = apps.get_model("customers", "EngagementSettings")
    for key, label, channel, weight, engagement in DEFAULT_TYPES:
        TouchpointType.objects.get_or_create(
            key=key,
            defaults={
                "label": label,
                "channel": channel,
                "weight": weight,
                "counts_as_engagement": engagement,
            },
        )
    EngagementSettings.objects.get_or_create(pk=1)


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; create them now so the
    # groups can be given them in the same migration run.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, grants in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        for model_label, actions in grants.items():
            app_label, model = model_label.split(".")
            codenames = [f"{action}_{model}" for action in actions]
            group.permissions.add(
                *Permission.objects.filter(
                    content_type__app_label=app_label, codename__in=codenames
                )
            )
    admin_group, _ = Group.objects.get_or_create(name="Admin")
    admin_group.permissions.add(
        *Permission.objects.filter(content_type__app_label__in=ADMIN_APPS)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(create_defaults, migrations.RunPython.noop),
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
