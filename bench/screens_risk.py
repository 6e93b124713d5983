"""Server time of the renewal-risk list, for the screens benchmark (bench/bench_screens.py).

``measure(client)`` requests the list ``requests`` times with a logged-in Django test client
(a customer-success or admin user) and returns each request's server time in seconds —
the time Django takes to build the response, without a network hop. The caller generates
the data and prints p95 against its baseline.
"""

from __future__ import annotations

import time

from django.urls import reverse

REQUESTS = 50
VARIANTS = ({}, {"days": "30"}, {"mine": "on"}, {"page": "3"})


def measure(client, *, requests: int = REQUESTS) -> list[float]:
    """Server times of ``requests`` renewal-risk list requests (default window, a short
    window, "my accounts" and a later page, in turn); raises if one is not a 200."""
    url = reverse("renewal-risk")
    times = []
    for i in range(requests):
        params = VARIANTS[i % len(VARIANTS)]
        started = time.perf_counter()
        response = client.get(url, params)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"renewal-risk {params} answered {response.status_code}")
    return times
