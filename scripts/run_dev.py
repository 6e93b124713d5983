"""Start web + Celery worker + beat together with prefixed logs; one Ctrl-C stops all three.

If any of the three exits, the others are stopped too, so a crash is never hidden.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # ``kill``, ``timeout`` or a process manager sends SIGTERM: stop the three processes as
    # Ctrl-C does. They run in sessions of their own, so without this they would outlive us.
    # Once: a second SIGTERM while stopping them must not cut the stopping short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    addr = os.environ.get("LIFECYCLE_ADDR", "127.0.0.1:8000")
    commands = {
        "web   ": [sys.executable, "manage.py", "runserver", addr],
        "worker": [
            str(BIN / "celery"),
            "-A",
            "lifecycle",
            "worker",
            "--loglevel=INFO",
            "--concurrency=2",
            "--hostname=worker@%h",
        ],
        "beat  ": [str(BIN / "celery"), "-A", "lifecycle", "beat", "--loglevel=INFO", "--pidfile="],
    }
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes: dict[str, subprocess.Popen] = {}
    for name, command in commands.items():
        processes[name] = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=_relay, args=(name, processes[name]), daemon=True).start()

    finished = threading.Event()
    for process in processes.values():
        threading.Thread(target=lambda p=process: (p.wait(), finished.set()), daemon=True).start()
    try:
        finished.wait()
        print("\nOne process exited; stopping the others.", flush=True)
    except KeyboardInterrupt:
        print("\nStopping web, worker and beat...", flush=True)
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return 0


def _relay(name: str, process: subprocess.Popen) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(f"[{name}] {line}")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
