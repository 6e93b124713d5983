"""Locks for engine jobs: PostgreSQL advisory locks, with an SQLite equivalent.

- ``job_lock(name)``: a run-level try-lock, so overlapping runs of one job skip instead of
  racing. PostgreSQL: a session advisory lock (released in ``finally``, and by the server if
  the worker dies, because its connection closes). SQLite: a lease row with an expiry, taken
  by a conditional insert/update, so a killed worker's lease simply runs out.
- ``engine_write_lock(shared=...)``: inside a transaction, orders engine writers. Chunks of a
  full pass (each sets absolute values from history) take it shared and run side by side;
  the incremental refresh (read-modify-write of deltas) takes it exclusive, so it never adds
  a touchpoint that a concurrent chunk's snapshot already counted, and nothing changes a
  row between its read and its write. SQLite serializes all write
  transactions anyway (``BEGIN IMMEDIATE``), so there it is a no-op.
"""

from __future__ import annotations

import os
import socket
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

# Advisory lock keys live in one namespace (first int) so they never collide with others'.
LOCK_NAMESPACE = 0x11FEC  # "lifec"
ENGINE_WRITE_KEY = 1


def _key(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def job_lock(name: str, *, lease: timedelta = timedelta(hours=2)) -> Iterator[bool]:
    """Yield True if this process holds the lock ``name`` for the block, else False."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, _key(name)])
            acquired = bool(cursor.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, _key(name)]
                    )
        return

    from customers.models import EngineLease

    holder = f"{_holder()}:{id(object())}"
    now = timezone.now()
    acquired = False
    with transaction.atomic():
        taken = EngineLease.objects.filter(name=name, expires_at__lt=now).update(
            holder=holder, expires_at=now + lease
        )
        if taken:
            acquired = True
        else:
            try:
                with transaction.atomic():
                    EngineLease.objects.create(name=name, holder=holder, expires_at=now + lease)
                acquired = True
            except IntegrityError:
                acquired = False
    try:
        yield acquired
    finally:
        if acquired:
            EngineLease.objects.filter(name=name, holder=holder).delete()


def engine_write_lock(*, shared: bool) -> None:
    """Take the engine write lock for the current transaction (see module docstring)."""
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [LOCK_NAMESPACE, ENGINE_WRITE_KEY])


def range_lock(first_id: int) -> None:
    """Serialize two chunks over the same id range (e.g. of a superseded and a new run)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)",
            [LOCK_NAMESPACE + 1, first_id & 0x7FFFFFFF],
        )


@contextmanager
def engine_write_session_lock() -> Iterator[None]:
    """Hold the engine write lock exclusively across several transactions (PostgreSQL).

    A rescore's snapshot and its later write-back are separate transactions; holding the
    lock at session level over both keeps every refresh batch out in between. Released in
    ``finally``, and by the server if the process dies (its connection closes).
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE, ENGINE_WRITE_KEY])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, ENGINE_WRITE_KEY])
