"""Cheaper touchpoint ingest: no database foreign key from the engine's queue to touchpoints,
no single-column index on ``customers_touchpoint.type_id``.

The type index is dropped by name lookup rather than with ``AlterField``: Django would also
drop and re-create the type foreign key, which re-validates every touchpoint under a lock.
"""

import django.db.models.deletion
from django.db import migrations, models


def _type_indexes(model, schema_editor) -> list[str]:
    return schema_editor._constraint_names(
        model, ["type_id"], index=True, unique=False, primary_key=False
    )


def drop_type_index(apps, schema_editor):
    model = apps.get_model("customers", "Touchpoint")
    for name in _type_indexes(model, schema_editor):
        schema_editor.execute(schema_editor._delete_index_sql(model, name))


def create_type_index(apps, schema_editor):
    model = apps.get_model("customers", "Touchpoint")
    if not _type_indexes(model, schema_editor):
        field = model._meta.get_field("type")
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0006_engine_hot_columns"),
    ]

    operations = [
        migrations.AlterField(
            model_name="pendingtouchpoint",
            name="touchpoint",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="customers.touchpoint",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="touchpoint",
                    name="type",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="touchpoints",
                        to="customers.touchpointtype",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_type_index, create_type_index)],
        ),
    ]
