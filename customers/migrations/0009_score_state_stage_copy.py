"""The engine's copy of each customer's stage in the score-state row (see ScoreState)."""

from django.db import migrations, models

from customers.engine.stages import RULE_IDS, STAGES


def copy_stages(apps, schema_editor):
    """Fill the copy from ``Engagement``, set-based (one statement per table)."""
    stage_case = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(STAGES))
    rule_case = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(RULE_IDS))
    # A row whose stage was never evaluated has no stage_since: its copy stays NULL.
    schema_editor.execute(
        f"""
        UPDATE customers_scorestate SET
            stage_code = CASE WHEN e.stage_since IS NOT NULL THEN CASE e.stage {stage_case} END END,
            stage_rule_code = CASE WHEN e.stage_since IS NOT NULL
                                   THEN CASE e.stage_rule {rule_case} END END,
            stage_since = e.stage_since
        FROM customers_engagement e WHERE e.customer_id = customers_scorestate.customer_id
        """
    )


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0008_screens_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="scorestate",
            name="stage_code",
            field=models.SmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="scorestate",
            name="stage_rule_code",
            field=models.SmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="scorestate",
            name="stage_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(copy_stages, migrations.RunPython.noop, elidable=True),
    ]
