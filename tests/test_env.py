from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from lifecycle.env import database_from_url, env_int_renamed


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


def test_renamed_setting_prefers_the_new_name(monkeypatch):
    monkeypatch.setenv("MAX_FUTURE_SKEW_SECONDS", "60")
    monkeypatch.setenv("API_MAX_FUTURE_SKEW_SECONDS", "900")
    assert env_int_renamed("MAX_FUTURE_SKEW_SECONDS", ("API_MAX_FUTURE_SKEW_SECONDS",), 300) == 60


def test_renamed_setting_falls_back_to_an_old_name_with_a_warning(monkeypatch):
    monkeypatch.delenv("MAX_FUTURE_SKEW_SECONDS", raising=False)
    monkeypatch.delenv("API_MAX_FUTURE_SKEW_SECONDS", raising=False)
    monkeypatch.setenv("TRACKING_FUTURE_SKEW_SECONDS", "120")
    names = ("API_MAX_FUTURE_SKEW_SECONDS", "TRACKING_FUTURE_SKEW_SECONDS")
    with pytest.warns(DeprecationWarning, match="TRACKING_FUTURE_SKEW_SECONDS is deprecated"):
        assert env_int_renamed("MAX_FUTURE_SKEW_SECONDS", names, 300) == 120
    monkeypatch.delenv("TRACKING_FUTURE_SKEW_SECONDS")
    assert env_int_renamed("MAX_FUTURE_SKEW_SECONDS", names, 300) == 300
