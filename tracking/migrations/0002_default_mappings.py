"""Default event mappings for event names of Segment's semantic specs, and the Admin role's
permissions on the tracking models."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Segment semantic event name → default touchpoint type key (customers 0002).
DEFAULT_MAPPINGS = [
    ("Page Viewed", "page_view"),  # every page call
    ("Signed In", "login"),  # B2B SaaS spec
    ("Trial Started", "trial_start"),  # B2B SaaS spec
    ("Order Completed", "purchase"),  # E-commerce spec
    ("Email Opened", "email_open"),  # Email spec
    ("Email Link Clicked", "email_click"),
    ("Email Bounced", "email_bounce"),
    ("Unsubscribed", "unsubscribe"),
]


def create_mappings(apps, schema_editor):
    EventMapping = apps.get_model("tracking", "EventMapping")
    TouchpointType = apps.get_model("customers", "TouchpointType")
    types = dict(TouchpointType.objects.values_list("key", "id"))
    for event_name, key in DEFAULT_MAPPINGS:
        if key in types:
            EventMapping.objects.get_or_create(event_name=event_name, defaults={"type_id": types[key]})


def grant_admin(apps, schema_editor):
    app_config = apps.get_app_config("tracking")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admin_group, _ = Group.objects.get_or_create(name="Admin")
    admin_group.permissions.add(*Permission.objects.filter(content_type__app_label="tracking"))


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0001_initial"),
        ("customers", "0002_defaults_and_roles"),
    ]

    operations = [
        migrations.RunPython(create_mappings, migrations.RunPython.noop),
        migrations.RunPython(grant_admin, migrations.RunPython.noop),
    ]
