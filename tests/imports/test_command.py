"""manage.py import_csv: the same service as the screen, a summary on the terminal."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from customers.models import Touchpoint
from imports.models import ImportRun
from tests.imports.conftest import TOUCHPOINT_HEADER

pytestmark = pytest.mark.django_db

GOOD = (
    TOUCHPOINT_HEADER
    + "e1,cust-a,login,2026-06-01T12:00:00Z,\ne2,cust-b,login,2026-06-01T12:00:00Z,\n"
)


def write(tmp_path, content: str):
    path = tmp_path / "events.csv"
    path.write_text(content)
    return path


def test_command_imports_and_prints_the_summary(customers, tmp_path):
    out = StringIO()
    call_command(
        "import_csv", "touchpoints", str(write(tmp_path, GOOD)), "--source", "crm", stdout=out
    )
    assert "Imported 2 of 2 rows: 2 touchpoints created, 0 duplicates" in out.getvalue()
    assert Touchpoint.objects.filter(source="crm").count() == 2
    run = ImportRun.objects.get()
    assert (run.origin, run.mode, run.status) == ("command", "atomic", "succeeded")


def test_bad_rows_fail_the_command_and_name_the_error_file(customers, tmp_path):
    path = write(tmp_path, GOOD + "e3,nobody,login,2026-06-01T12:00:00Z,\n")
    out = StringIO()
    with pytest.raises(CommandError, match=r"Nothing imported: 1 of 3 rows have errors"):
        call_command("import_csv", "touchpoints", str(path), stdout=out)
    assert "row 4: customer_external_id matches no customer" in out.getvalue()
    assert "Error file: " in out.getvalue() and not Touchpoint.objects.exists()
    out = StringIO()
    call_command("import_csv", "touchpoints", str(path), "--skip-bad-rows", stdout=out)
    assert "1 bad rows skipped" in out.getvalue() and Touchpoint.objects.count() == 2


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read .*nope\.csv: No such file"):
        call_command("import_csv", "customers", str(tmp_path / "nope.csv"))
