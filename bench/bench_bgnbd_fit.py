"""Benchmark: fit the MBG/NBD model and score P(alive) for N simulated customers.

Usage::

    .venv/bin/python bench/bench_bgnbd_fit.py --customers 1000000

Prints timings and memory; asserts nothing. ``run(n)`` returns the same figures as a dict so
the main benchmark can import this module. Pure numpy/scipy: Django is never imported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

# Running "python bench/bench_bgnbd_fit.py" puts bench/ on sys.path, not the project root.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import numpy as np  # noqa: E402

from customers.engine import bgnbd  # noqa: E402

#: Parameters used to simulate customers (mean: one action per 16 days, 24% drop-out per action).
BENCH_PARAMS = bgnbd.MBGParams(r=0.25, alpha=4.0, a=0.8, b=2.5)


def _current_rss_mib() -> float | None:
    """Resident memory right now (Linux /proc), or None where unavailable."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def run(n: int, *, seed: int = 0) -> dict[str, Any]:
    """Simulate ``n`` customers, then time ``fit`` and ``p_alive`` on all of them.

    Ages are uniform over 30..540 days. Returns seconds per phase, the fit outcome, and memory:
    ``peak_rss_mib`` is the process peak so far, ``extra_peak_mib_upper_bound`` is that peak
    minus the resident memory just before the fit (an upper bound on what fit + p_alive added,
    because the simulation's own peak may be the larger one).
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    rng = np.random.default_rng(seed)

    start = time.perf_counter()
    ages = rng.uniform(30.0, 540.0, n)
    x, t_x, T = bgnbd.simulate(BENCH_PARAMS, n, ages, rng=rng)
    simulate_s = time.perf_counter() - start
    del ages

    rss_before = _current_rss_mib()
    start = time.perf_counter()
    result = bgnbd.fit(x, t_x, T)
    fit_s = time.perf_counter() - start

    start = time.perf_counter()
    probabilities = bgnbd.p_alive(result.params, x, t_x, T)
    p_alive_s = time.perf_counter() - start

    peak = _peak_rss_mib()
    return {
        "customers": n,
        "simulate_s": round(simulate_s, 3),
        "fit_s": round(fit_s, 3),
        "p_alive_s": round(p_alive_s, 3),
        "fit_plus_p_alive_s": round(fit_s + p_alive_s, 3),
        "converged": result.converged,
        "iterations": result.iterations,
        "message": result.message,
        "true_params": vars(BENCH_PARAMS),
        "fitted_params": {k: round(v, 4) for k, v in vars(result.params).items()},
        "mean_p_alive": round(float(probabilities.mean()), 4),
        "rss_before_fit_mib": None if rss_before is None else round(rss_before, 1),
        "peak_rss_mib": round(peak, 1),
        "extra_peak_mib_upper_bound": None if rss_before is None else round(peak - rss_before, 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: parse arguments, run, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="number of customers")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the simulation")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.customers, seed=args.seed), indent=2))


if __name__ == "__main__":
    main()
