"""Temporary tables an import stages its rows and row errors in.

Rows are checked cell by cell in Python while the file streams in, and the good ones are
written to a session-local temporary table in batches: with ``COPY … FROM STDIN`` on
PostgreSQL (text format, built in one buffer per batch), with ``executemany`` on SQLite.
Checks that need the database (customer references, repeats inside the file) then run as
set-based SQL over the staged rows, and the import applies them with one ``INSERT … SELECT``
(PostgreSQL) or in batches (SQLite). Nothing touches the real tables before every row has
been read and checked, so all-or-nothing needs no transaction held open while reading.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from django.db import connection

from imports.rows import RowError

ERROR_VALUE_MAX = 500  # characters of a bad cell kept in the error file


def _sqlite_type(pg_type: str) -> str:
    return "integer" if pg_type in {"bigint", "integer"} else "text"


class Staging:
    """The staged-rows table and the row-errors table of one import."""

    def __init__(self, run_id: int, columns: Sequence[tuple[str, str]]) -> None:
        self.table = f"import_stage_{run_id}"
        self.errors = f"import_errors_{run_id}"
        self.columns = [name for name, _ in columns]
        self.types = dict(columns)
        self.postgres = connection.vendor == "postgresql"
        self.rows_staged = 0

    # --- lifecycle -------------------------------------------------------------------

    def create(self) -> None:
        self.drop()
        with connection.cursor() as cursor:
            if self.postgres:
                cols = ", ".join(f"{n} {t}" for n, t in self.types.items())
                cursor.execute(f"CREATE TEMPORARY TABLE {self.table} ({cols})")
                cursor.execute(
                    f"CREATE TEMPORARY TABLE {self.errors} (seq bigint GENERATED ALWAYS AS "
                    f"IDENTITY, row_no bigint, col text, value text, message text)"
                )
            else:
                cols = ", ".join(
                    f"{n} {'integer primary key' if n == 'row_no' else _sqlite_type(t)}"
                    for n, t in self.types.items()
                )
                cursor.execute(f"CREATE TEMPORARY TABLE {self.table} ({cols})")
                cursor.execute(
                    f"CREATE TEMPORARY TABLE {self.errors} (row_no integer, col text, "
                    f"value text, message text)"
                )
                cursor.execute(f"CREATE INDEX {self.errors}_row ON {self.errors} (row_no)")

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
            cursor.execute(f"DROP TABLE IF EXISTS {self.errors}")

    # --- writing ---------------------------------------------------------------------

    def write(self, rows: list[tuple[str, ...]], errors: list[RowError]) -> list[RowError]:
        """Stage a batch of checked rows and record row errors, plus errors for rows that
        cannot be stored at all (a NUL character); returns the latter."""
        unstorable: list[RowError] = []
        if rows:
            unstorable = self._copy_rows(rows) if self.postgres else self._insert_rows(rows)
            self.rows_staged += len(rows) - len(unstorable)
        errors = errors + unstorable
        if errors:
            self.write_errors(errors)
        return unstorable

    def _copy_rows(self, rows: list[tuple[str, ...]]) -> list[RowError]:
        width = len(self.columns)
        text = "\n".join(map("\t".join, rows)) + "\n"
        # Fast path: no field holds a character COPY's text format treats specially, so the
        # joined buffer is exactly the rows. Counting is a C scan; it proves that cheaply.
        clean = (
            text.count("\t") == len(rows) * (width - 1)
            and text.count("\n") == len(rows)
            and "\\" not in text
            and "\r" not in text
            and "\x00" not in text
        )
        unstorable: list[RowError] = []
        sql = f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN (FORMAT text, NULL '')"
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            if clean:
                copy.write(text)
            else:
                for row in rows:
                    if any("\x00" in field for field in row):
                        unstorable.append(_nul_error(row, self.columns))
                        continue
                    copy.write("\t".join(map(_escape_text, row)) + "\n")
        return unstorable

    def _insert_rows(self, rows: list[tuple[str, ...]]) -> list[RowError]:
        # NUL is refused here too, so a file imports the same on SQLite as on PostgreSQL.
        unstorable = [_nul_error(r, self.columns) for r in rows if any("\x00" in f for f in r)]
        times = [i for i, c in enumerate(self.columns) if self.types[c] == "timestamptz"]
        values = []
        for row in rows:
            if any("\x00" in f for f in row):
                continue
            row = [field or None for field in row]
            for i in times:
                if row[i]:
                    row[i] = _sqlite_datetime(row[i])
            values.append(row)
        placeholders = ", ".join(["%s"] * len(self.columns))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({placeholders})",
                values,
            )
        return unstorable

    def write_errors(self, errors: list[RowError]) -> None:
        values = [
            (e.row, e.column, e.value[:ERROR_VALUE_MAX].replace("\x00", "\ufffd"), e.message)
            for e in errors
        ]
        with connection.cursor() as cursor:
            if self.postgres:
                sql = f"COPY {self.errors} (row_no, col, value, message) FROM STDIN"
                with cursor.cursor.copy(sql) as copy:
                    for value in values:
                        copy.write_row(value)
            else:
                cursor.executemany(
                    f"INSERT INTO {self.errors} (row_no, col, value, message) "
                    f"VALUES (%s, %s, %s, %s)",
                    values,
                )

    # --- reading ---------------------------------------------------------------------

    def analyze(self) -> None:
        """Index rows by number and give the planner the staged table's real size (temporary
        tables get no statistics by themselves). Rows were appended in file order, so a
        tiny BRIN index finds a range of row numbers."""
        if self.postgres:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE INDEX ON {self.table} USING brin (row_no)")
                cursor.execute(f"ANALYZE {self.table}")

    def row_ranges(self, size: int) -> Iterator[tuple[int, int]]:
        """Consecutive (first, last) row-number ranges covering the staged rows."""
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT MIN(row_no), MAX(row_no) FROM {self.table}")
            low, high = cursor.fetchone()
        if low is None:
            return
        for first in range(low, high + 1, size):
            yield first, min(first + size - 1, high)

    def has_values(self, column: str) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {self.table} WHERE {column} IS NOT NULL LIMIT 1")
            return cursor.fetchone() is not None

    def bad_rows(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(DISTINCT row_no) FROM {self.errors}")
            return int(cursor.fetchone()[0])

    def iter_errors(self, batch: int = 5_000) -> Iterator[tuple[int, str, str, str]]:
        """Every row error, in file order, streamed (bounded memory however many)."""
        order = "row_no, seq" if self.postgres else "row_no, rowid"
        cursor = connection.chunked_cursor()
        try:
            cursor.execute(
                f"SELECT row_no, col, value, message FROM {self.errors} ORDER BY {order}"
            )
            while chunk := cursor.fetchmany(batch):
                yield from chunk
        finally:
            cursor.close()


def _sqlite_datetime(text: str) -> str:
    """An ISO-8601 time with offset as Django stores datetimes in SQLite: naive UTC text."""
    return str(datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None))


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _escape_text(field: str) -> str:
    return field.translate(_ESCAPES)


# Staged column → the CSV column it came from, where the names differ.
_CSV_COLUMN = {"event_id": "id", "type_id": "type", "owner_id": "owner"}


def _nul_error(row: tuple[str, ...], columns: list[str]) -> RowError:
    staged = next(c for c, f in zip(columns, row, strict=True) if "\x00" in f)
    column = _CSV_COLUMN.get(staged, staged)
    return RowError(
        int(row[0]),
        column,
        "",
        f"{column} contains a NUL character (byte 0x00), which cannot be stored",
    )
