"""The Segment-compatible HTTP endpoints: ``POST /v1/<identify|track|page|screen|group|alias>``
and ``POST /v1/batch`` (``/v1/import`` is Segment's older name for it).

Machine endpoints: authenticated by a source's write key (HTTP Basic), so they are exempt from
the session login and from CSRF (no cookie is involved). Answers are JSON with ``code`` and
``message`` on errors (what Segment's libraries log).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from customers.timestamps import max_future_skew
from tracking.messages import (
    KINDS,
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    Message,
    MessageError,
    RequestError,
    body_json,
    body_read,
    message_parse,
    time_parse,
    too_large_text,
)
from tracking.services import Rejection, rejections_record, source_authenticate, tracking_ingest

ENDPOINTS = (*KINDS, "batch", "import")
# Compressed bodies are read up to the limit plus gzip's worst-case overhead (stored blocks).
READ_SLACK = 16 * 1024


def _error(status: int, code: str, message: str, **extra) -> JsonResponse:
    response = JsonResponse({"success": False, "code": code, "message": message, **extra})
    response.status_code = status
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="Lifecycle tracking API"'
    return response


def _read(request: HttpRequest, limit: int, endpoint: str) -> dict:
    cap = limit + READ_SLACK
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > cap:
        raise RequestError(413, "payload_too_large", too_large_text(endpoint, limit))
    raw = request.read(cap + 1)
    if len(raw) > cap:
        raise RequestError(413, "payload_too_large", too_large_text(endpoint, limit))
    body = body_read(
        raw,
        content_encoding=request.META.get("HTTP_CONTENT_ENCODING", ""),
        limit=limit,
        endpoint=endpoint,
    )
    return body_json(body)


@csrf_exempt
@login_not_required
@require_POST
def tracking_endpoint(request: HttpRequest, endpoint: str) -> JsonResponse:
    source = source_authenticate(request.META.get("HTTP_AUTHORIZATION", ""))
    if source is None:
        # Read (and drop) a body of allowed size, so a kept-alive connection stays usable.
        request.read(MAX_BATCH_BYTES + READ_SLACK)
        return _error(
            401,
            "unauthorized",
            "Missing, unknown or revoked write key: send it as the HTTP Basic user name "
            "with an empty password.",
        )
    received_at = timezone.now()
    is_batch = endpoint in ("batch", "import")
    try:
        data = _read(request, MAX_BATCH_BYTES if is_batch else MAX_MESSAGE_BYTES, endpoint)
    except RequestError as exc:
        return _error(exc.status, exc.code, exc.message)
    if is_batch:
        return _batch(source, data, received_at)
    try:
        message = message_parse(
            data,
            kind=endpoint,
            index=None,
            batch_sent_at=None,
            received_at=received_at,
            future_skew=max_future_skew(),
        )
    except MessageError as exc:
        rejections_record(
            source=source,
            endpoint=endpoint,
            rejections=[Rejection(None, str(data.get("messageId") or ""), str(exc), data)],
            received_at=received_at,
        )
        return _error(400, "invalid_message", str(exc))
    result = tracking_ingest(
        source=source, endpoint=endpoint, messages=[message], received_at=received_at
    )
    if result.rejected:
        return _error(400, "invalid_message", result.rejected[0].error)
    return JsonResponse({"success": True, **result.as_dict()})


def _batch(source, data: dict, received_at) -> JsonResponse:
    items = data.get("batch")
    if not isinstance(items, list):
        return _error(400, "invalid_batch", "The body needs a 'batch' list of messages.")
    batch_sent_at = None
    if data.get("sentAt") is not None:
        try:
            batch_sent_at = time_parse("sentAt", data["sentAt"])
        except MessageError as exc:
            return _error(400, "invalid_batch", str(exc))
    messages: list[Message] = []
    rejections: list[Rejection] = []
    skew = max_future_skew()
    for index, item in enumerate(items):
        try:
            messages.append(
                message_parse(
                    item,
                    kind=None,
                    index=index,
                    batch_sent_at=batch_sent_at,
                    received_at=received_at,
                    future_skew=skew,
                )
            )
        except MessageError as exc:
            message_id = item.get("messageId") if isinstance(item, dict) else None
            rejections.append(Rejection(index, str(message_id or ""), str(exc), item))
    result = tracking_ingest(
        source=source,
        endpoint="batch",
        messages=messages,
        rejections=rejections,
        received_at=received_at,
    )
    if items and not result.accepted:
        first = result.rejected[0]
        return _error(
            400,
            "invalid_batch",
            f"All {len(items)} messages were refused; message {first.index}: {first.error}",
            **result.as_dict(),
        )
    return JsonResponse({"success": True, **result.as_dict()})
