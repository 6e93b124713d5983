"""Start a real Celery worker process on a private queue, for tests that need one."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shared_database_url() -> str:
    """The URL of the test database Django is connected to, for another process or a second
    connection (a worker, a concurrent session) to reach the same data."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return (
            f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
    return f"sqlite:///{db['NAME']}"


def worker_start(
    queue: str, *, env: dict[str, str] | None = None, capture: bool = False
) -> subprocess.Popen:
    """A solo-pool worker consuming only ``queue`` (a developer's worker cannot steal it)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "lifecycle",
            "worker",
            "-P",
            "solo",
            "-Q",
            queue,
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
            f"--hostname={queue}-{uuid.uuid4().hex[:4]}@%h",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
        text=True,
    )
