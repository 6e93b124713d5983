import base64
import gzip
import json

import pytest

from tracking.services import source_create


@pytest.fixture
def fresh_db_connections(monkeypatch):
    """Live-server tests: every request closes its database connection when it ends.

    A live-server thread serving a kept-alive HTTP connection keeps its database connection
    between requests (CONN_MAX_AGE), which would keep the PostgreSQL test database busy at
    teardown."""
    from django.db import connections

    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


@pytest.fixture
def source_key(db):
    """A source and its write key (in clear, as the admin copied it)."""
    return source_create(name="Website")


@pytest.fixture
def send(client, source_key):
    """POST a JSON payload to /v1/<endpoint> with the source's write key, as SDKs do."""

    def _send(endpoint, payload, *, key=None, compress=False, raw=None, headers=None):
        key = source_key[1] if key is None else key
        body = raw if raw is not None else json.dumps(payload).encode()
        extra = {"HTTP_AUTHORIZATION": basic(key)} if key else {}
        if compress:
            body = gzip.compress(body)
            extra["HTTP_CONTENT_ENCODING"] = "gzip"
        extra.update(headers or {})
        return client.post(f"/v1/{endpoint}", body, content_type="application/json", **extra)

    return _send


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()
