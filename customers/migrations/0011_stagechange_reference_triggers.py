"""Stage-change rows: customer references enforced per statement (as touchpoints, 0010).

The refresh inserts a stage-change row for every customer whose stage moved (hundreds per
batch); the foreign key looked up and locked each one's customer row at commit, and its own
index on customer duplicated the (customer, changed_at) index.
"""

from django.db import migrations, models

POSTGRES = """
CREATE FUNCTION customers_stagechange_customer_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    missing bigint;
BEGIN
    PERFORM 1 FROM customers_customer c
        WHERE c.id IN (SELECT customer_id FROM new_rows) FOR KEY SHARE OF c;
    SELECT n.customer_id INTO missing FROM new_rows n
        WHERE NOT EXISTS (SELECT 1 FROM customers_customer c WHERE c.id = n.customer_id)
        LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('Stage change refers to customer %%s, which does not exist.', missing);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER customers_stagechange_customer_insert
    AFTER INSERT ON customers_stagechange REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION customers_stagechange_customer_check();
CREATE TRIGGER customers_stagechange_customer_update
    AFTER UPDATE ON customers_stagechange REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION customers_stagechange_customer_check();

CREATE OR REPLACE FUNCTION customers_customer_touchpoints_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customers_touchpoint t WHERE t.customer_id IN (SELECT id FROM old_rows);
    DELETE FROM customers_stagechange s WHERE s.customer_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;
"""

POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS customers_stagechange_customer_insert ON customers_stagechange;
DROP TRIGGER IF EXISTS customers_stagechange_customer_update ON customers_stagechange;
DROP FUNCTION IF EXISTS customers_stagechange_customer_check();
CREATE OR REPLACE FUNCTION customers_customer_touchpoints_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customers_touchpoint t WHERE t.customer_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;
"""

_SQLITE_MISSING = "NOT EXISTS (SELECT 1 FROM customers_customer WHERE id = NEW.customer_id)"
_SQLITE_MESSAGE = "FOREIGN KEY constraint failed: a missing customer"
SQLITE = [
    f"""CREATE TRIGGER customers_stagechange_customer_insert
        BEFORE INSERT ON customers_stagechange FOR EACH ROW WHEN {_SQLITE_MISSING}
        BEGIN SELECT RAISE(ABORT, '{_SQLITE_MESSAGE}'); END""",
    f"""CREATE TRIGGER customers_stagechange_customer_update
        BEFORE UPDATE OF customer_id ON customers_stagechange FOR EACH ROW
        WHEN {_SQLITE_MISSING}
        BEGIN SELECT RAISE(ABORT, '{_SQLITE_MESSAGE}'); END""",
    """CREATE TRIGGER customers_customer_stagechanges_delete
        AFTER DELETE ON customers_customer FOR EACH ROW
        BEGIN DELETE FROM customers_stagechange WHERE customer_id = OLD.id; END""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS customers_stagechange_customer_insert",
    "DROP TRIGGER IF EXISTS customers_stagechange_customer_update",
    "DROP TRIGGER IF EXISTS customers_customer_stagechanges_delete",
]


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES)
    else:
        for statement in SQLITE:
            schema_editor.execute(statement)


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_REVERSE)
    else:
        for statement in SQLITE_REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0010_touchpoint_reference_triggers"),
    ]

    operations = [
        migrations.AlterField(
            model_name="stagechange",
            name="customer",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="stage_changes",
                to="customers.customer",
            ),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
