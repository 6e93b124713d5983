"""References to customers and types enforced per statement, not per row.

A foreign-key constraint looks up its parent row, with a ``FOR KEY SHARE`` lock, once per
inserted row: for a bulk import of 1M touchpoints that was 16 of 42 s on the benchmark
machine, and the refresh's commit did it for every stage-change row. Triggers give the same
guarantees set-based, for touchpoints (customer, type) and stage changes (customer):

- inserting or updating rows: once per statement, lock the distinct referenced customers
  and types ``FOR KEY SHARE`` (as the constraint would, so neither can be deleted until this
  transaction ends) and refuse the statement if any is missing;
- deleting customers: their touchpoints and stage changes go too (``on_delete=CASCADE``,
  also for rows committed by a transaction the deletion had to wait for);
- deleting a touchpoint type still used by touchpoints is refused (``on_delete=PROTECT``).

PostgreSQL: statement-level triggers with transition tables. SQLite: row-level triggers
(there the constraint check was no bottleneck, but the guarantees must not differ).

Also: the engine queue loses its index on customer (a third of each queued row's cost;
nothing on PostgreSQL reads it), and stage changes their single-column customer index
(the (customer, changed_at) index covers it).
"""

from django.db import migrations, models

POSTGRES = """
CREATE FUNCTION customers_references_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    missing bigint;
BEGIN
    -- Lock first, then look: a parent deleted by a transaction we waited for is then seen
    -- as missing (each statement here takes a new snapshot under READ COMMITTED).
    PERFORM 1 FROM customers_customer c
        WHERE c.id IN (SELECT customer_id FROM new_rows) FOR KEY SHARE OF c;
    SELECT n.customer_id INTO missing FROM new_rows n
        WHERE NOT EXISTS (SELECT 1 FROM customers_customer c WHERE c.id = n.customer_id)
        LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('%%s refers to customer %%s, which does not exist.',
                             TG_ARGV[0], missing);
    END IF;
    IF TG_ARGV[0] = 'Touchpoint' THEN
        PERFORM 1 FROM customers_touchpointtype t
            WHERE t.id IN (SELECT type_id FROM new_rows) FOR KEY SHARE OF t;
        SELECT n.type_id INTO missing FROM new_rows n
            WHERE NOT EXISTS (SELECT 1 FROM customers_touchpointtype t WHERE t.id = n.type_id)
            LIMIT 1;
        IF FOUND THEN
            RAISE foreign_key_violation USING
                MESSAGE = format('Touchpoint refers to type %%s, which does not exist.', missing);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER customers_touchpoint_references_insert
    AFTER INSERT ON customers_touchpoint REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION customers_references_check('Touchpoint');
CREATE TRIGGER customers_touchpoint_references_update
    AFTER UPDATE ON customers_touchpoint REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION customers_references_check('Touchpoint');
CREATE TRIGGER customers_stagechange_customer_insert
    AFTER INSERT ON customers_stagechange REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION customers_references_check('Stage change');
CREATE TRIGGER customers_stagechange_customer_update
    AFTER UPDATE ON customers_stagechange REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION customers_references_check('Stage change');

CREATE FUNCTION customers_customer_children_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customers_touchpoint t WHERE t.customer_id IN (SELECT id FROM old_rows);
    DELETE FROM customers_stagechange s WHERE s.customer_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;

CREATE TRIGGER customers_customer_children_delete
    AFTER DELETE ON customers_customer REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION customers_customer_children_delete();

CREATE FUNCTION customers_touchpointtype_protect() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    used bigint;
BEGIN
    SELECT t.type_id INTO used FROM customers_touchpoint t
        WHERE t.type_id IN (SELECT id FROM old_rows) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('Touchpoint type %%s is still used by touchpoints.', used);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER customers_touchpointtype_protect
    AFTER DELETE ON customers_touchpointtype REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION customers_touchpointtype_protect();
"""

POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS customers_touchpoint_references_insert ON customers_touchpoint;
DROP TRIGGER IF EXISTS customers_touchpoint_references_update ON customers_touchpoint;
DROP TRIGGER IF EXISTS customers_stagechange_customer_insert ON customers_stagechange;
DROP TRIGGER IF EXISTS customers_stagechange_customer_update ON customers_stagechange;
DROP FUNCTION IF EXISTS customers_references_check();
DROP TRIGGER IF EXISTS customers_customer_children_delete ON customers_customer;
DROP FUNCTION IF EXISTS customers_customer_children_delete();
DROP TRIGGER IF EXISTS customers_touchpointtype_protect ON customers_touchpointtype;
DROP FUNCTION IF EXISTS customers_touchpointtype_protect();
"""

_SQLITE_MESSAGE = "FOREIGN KEY constraint failed: a missing customer or touchpoint type"
_TOUCHPOINT_MISSING = (
    "NOT EXISTS (SELECT 1 FROM customers_customer WHERE id = NEW.customer_id) "
    "OR NOT EXISTS (SELECT 1 FROM customers_touchpointtype WHERE id = NEW.type_id)"
)
_STAGECHANGE_MISSING = "NOT EXISTS (SELECT 1 FROM customers_customer WHERE id = NEW.customer_id)"
SQLITE = [
    f"""CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW WHEN {missing}
        BEGIN SELECT RAISE(ABORT, '{_SQLITE_MESSAGE}'); END"""
    for name, event, table, missing in (
        (
            "customers_touchpoint_references_insert",
            "INSERT",
            "customers_touchpoint",
            _TOUCHPOINT_MISSING,
        ),
        (
            "customers_touchpoint_references_update",
            "UPDATE OF customer_id, type_id",
            "customers_touchpoint",
            _TOUCHPOINT_MISSING,
        ),
        (
            "customers_stagechange_customer_insert",
            "INSERT",
            "customers_stagechange",
            _STAGECHANGE_MISSING,
        ),
        (
            "customers_stagechange_customer_update",
            "UPDATE OF customer_id",
            "customers_stagechange",
            _STAGECHANGE_MISSING,
        ),
    )
] + [
    """CREATE TRIGGER customers_customer_children_delete
        AFTER DELETE ON customers_customer FOR EACH ROW
        BEGIN
            DELETE FROM customers_touchpoint WHERE customer_id = OLD.id;
            DELETE FROM customers_stagechange WHERE customer_id = OLD.id;
        END""",
    """CREATE TRIGGER customers_touchpointtype_protect
        BEFORE DELETE ON customers_touchpointtype FOR EACH ROW
        WHEN EXISTS (SELECT 1 FROM customers_touchpoint WHERE type_id = OLD.id)
        BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: a touchpoint type in use');
        END""",
]
SQLITE_REVERSE = [
    f"DROP TRIGGER IF EXISTS {name}"
    for name in (
        "customers_touchpoint_references_insert",
        "customers_touchpoint_references_update",
        "customers_stagechange_customer_insert",
        "customers_stagechange_customer_update",
        "customers_customer_children_delete",
        "customers_touchpointtype_protect",
    )
]


def _run(schema_editor, postgres: str, sqlite: list[str]) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(postgres)
        return
    for statement in sqlite:
        schema_editor.execute(statement)


def create_triggers(apps, schema_editor):
    _run(schema_editor, POSTGRES, SQLITE)


def drop_triggers(apps, schema_editor):
    _run(schema_editor, POSTGRES_REVERSE, SQLITE_REVERSE)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0009_score_state_stage_copy"),
    ]

    operations = [
        migrations.AlterField(
            model_name="touchpoint",
            name="customer",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="touchpoints",
                to="customers.customer",
            ),
        ),
        migrations.AlterField(
            model_name="touchpoint",
            name="type",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.PROTECT,
                related_name="touchpoints",
                to="customers.touchpointtype",
            ),
        ),
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
        migrations.AlterField(
            model_name="pendingtouchpoint",
            name="customer_id",
            field=models.BigIntegerField(),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
