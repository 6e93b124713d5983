"""Mapping an event name converts its stored events into touchpoints through the engine queue."""

from datetime import UTC, datetime

import pytest

from customers.engagement import engagement_refresh
from customers.models import PendingTouchpoint, ScoreState, Touchpoint, TouchpointType
from tracking.models import EventMapping, UnmappedEvent
from tracking.services import event_mapping_save, unmapped_backfill

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def send_shares(send, n, start=0):
    batch = [
        {
            "type": "track",
            "userId": f"u{i % 3}",
            "event": "Playlist Shared",
            "messageId": f"s{i}",
            "timestamp": T0.replace(day=1 + i).isoformat(),
        }
        for i in range(start, start + n)
    ]
    return send("batch", {"batch": batch}).json()


def test_mapping_a_name_converts_its_stored_events_with_their_original_times(send):
    assert send_shares(send, 5)["unmapped_stored"] == 5
    social = TouchpointType.objects.get(key="social_mention")
    EventMapping.objects.create(event_name="Playlist Shared", type=social)
    assert unmapped_backfill(event_name="Playlist Shared", chunk=2) == 5
    assert not UnmappedEvent.objects.exists()
    touchpoints = Touchpoint.objects.order_by("occurred_at")
    assert [t.occurred_at.day for t in touchpoints] == [1, 2, 3, 4, 5]
    assert {t.type_id for t in touchpoints} == {social.pk}
    assert {t.idempotency_key for t in touchpoints} == {f"s{i}" for i in range(5)}
    assert PendingTouchpoint.objects.count() == 5  # the engine queue, not a direct write
    # not a whole hour: see the report about stage_due_at == now in the engine's refresh
    engagement_refresh(now=T0.replace(month=4, minute=17))
    assert sum(ScoreState.objects.values_list("frequency", flat=True)) == 5


def test_a_message_resent_after_mapping_is_not_doubled_by_the_backfill(send):
    send_shares(send, 3)
    EventMapping.objects.create(
        event_name="Playlist Shared", type=TouchpointType.objects.get(key="social_mention")
    )
    again = send_shares(send, 3)  # mapped now: goes straight to touchpoints
    assert again["touchpoints_created"] == 3
    assert unmapped_backfill() == 0  # same messageIds: nothing new
    assert Touchpoint.objects.count() == 3 and not UnmappedEvent.objects.exists()


def test_backfill_leaves_names_without_a_mapping_alone(send):
    send_shares(send, 2)
    send("track", {"userId": "u", "event": "Other", "messageId": "o1"})
    assert unmapped_backfill() == 0
    assert UnmappedEvent.objects.count() == 3


def test_saving_a_mapping_starts_the_backfill_after_commit(
    send, django_capture_on_commit_callbacks, monkeypatch
):
    from tracking import tasks

    started = []
    monkeypatch.setattr(tasks.backfill_task, "delay", lambda name: started.append(name))
    send_shares(send, 4)
    with django_capture_on_commit_callbacks(execute=True):
        mapping, waiting = event_mapping_save(
            event_name=" Playlist Shared ", type=TouchpointType.objects.get(key="social_mention")
        )
    assert (mapping.event_name, waiting, started) == ("Playlist Shared", 4, ["Playlist Shared"])
    # the task body is the service
    assert tasks.backfill_task.run("Playlist Shared") == 4
