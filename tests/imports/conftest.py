from collections.abc import Callable
from pathlib import Path

import pytest

from customers.engagement import engine_rows_ensure
from imports import services
from imports.models import ImportRun
from tests.factories import CustomerFactory

TOUCHPOINT_HEADER = "id,customer_external_id,type,occurred_at,value\n"


@pytest.fixture
def customers(db):
    """Three customers with engine rows: cust-a, cust-b, cust-c."""
    made = [CustomerFactory(external_id=f"cust-{x}") for x in "abc"]
    engine_rows_ensure([c.pk for c in made])
    return {c.external_id: c for c in made}


@pytest.fixture
def run_import(tmp_path: Path) -> Callable[..., ImportRun]:
    """Write ``content`` (str or bytes) to a file and import it in this process."""
    counter = iter(range(1_000_000))

    def _run(kind: str, content: str | bytes, *, skip: bool = False, source: str = "") -> ImportRun:
        path = tmp_path / f"file-{next(counter)}.csv"
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8", newline="")
        else:
            path.write_bytes(content)
        mode = ImportRun.Mode.SKIP if skip else ImportRun.Mode.ATOMIC
        return services.import_file(kind=kind, path=path, mode=mode, source=source)

    return _run


def error_rows(run: ImportRun) -> list[list[str]]:
    """The run's error file as rows (header first)."""
    import csv
    import io

    with run.error_file.open("rb") as f:
        return list(csv.reader(io.StringIO(f.read().decode("utf-8"))))


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path_factory):
    """Uploads and error files of tests go to a temporary folder."""
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")
    return settings.MEDIA_ROOT
