"""An email backend for benchmarks: serializes every message exactly as Django's SMTP backend
does before writing it to the socket (``message.as_bytes(linesep="\\r\\n")``), counts it, and
drops it. Unlike locmem it does not deep-copy each message into a list."""

from __future__ import annotations

from django.core.mail.backends.base import BaseEmailBackend

SENT = {"messages": 0, "bytes": 0}


class EmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        for message in email_messages:
            data = message.message().as_bytes(linesep="\r\n")
            SENT["messages"] += 1
            SENT["bytes"] += len(data)
        return len(email_messages)
