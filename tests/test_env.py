from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from lifecycle.env import database_from_url


def test_postgres_url_is_parsed():
    db = database_from_url(
        "postgres://bob:s%40cret@db.internal:6543/life?sslmode=require", base_dir=Path("/srv")
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "bob",
        "s@cret",
        "db.internal",
        "6543",
        "life",
    )
    assert db["OPTIONS"] == {"sslmode": "require"}


def test_sqlite_urls_relative_and_absolute(tmp_path):
    relative = database_from_url("sqlite:///data/x.sqlite3", base_dir=tmp_path)
    assert relative["NAME"] == str(tmp_path / "data" / "x.sqlite3")
    absolute = database_from_url(f"sqlite:///{tmp_path}/y.sqlite3", base_dir=Path("/elsewhere"))
    assert absolute["NAME"] == f"{tmp_path}/y.sqlite3"


def test_unknown_database_scheme_is_refused_with_its_name():
    with pytest.raises(ImproperlyConfigured, match="'mysql' is not supported"):
        database_from_url("mysql://x/y", base_dir=Path("."))
