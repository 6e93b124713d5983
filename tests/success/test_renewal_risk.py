import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.engagement import engine_config
from customers.engine import decay
from customers.models import Engagement, PendingTouchpoint, ScoreState, Touchpoint
from success.models import CustomerNote
from success.risk import renewal_risk_refresh
from success.selectors import renewal_risk_accounts, risk_reason
from success.services import NoteError, customer_note_add
from tests.factories import CustomerFactory, TouchpointFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _sum_for_score(score: float) -> float:
    config = engine_config()
    low, _ = decay.score_bounds_to_decay_sum(
        score,
        None,
        timezone.now().timestamp(),
        epoch=config.epoch,
        half_life_days=config.half_life_days,
        half_point=config.half_point,
    )
    return low


def _account(name, *, renews_in, revenue, stage="engaged", p_alive=0.9, trend=0.0, owner=None):
    c = CustomerFactory(
        name=name,
        renewal_date=timezone.localdate() + timedelta(days=renews_in),
        lifetime_revenue=Decimal(revenue),
        owner=owner,
    )
    Engagement.objects.filter(customer=c).update(stage=stage, trend_30d=trend)
    # Score 90, so only stage / trend make these accounts risky.
    ScoreState.objects.filter(customer=c).update(decay_sum=_sum_for_score(90), p_alive=p_alive)
    return c


def test_it_lists_slipping_accounts_by_revenue_at_risk(cs_user):
    big = _account("Big cooling", renews_in=30, revenue="10000", stage="cooling", p_alive=0.5)
    small = _account("Small at risk", renews_in=10, revenue="2000", stage="at_risk", p_alive=0.1)
    falling = _account("Falling", renews_in=60, revenue="3000", trend=-12.0, p_alive=0.8)
    _account("Healthy", renews_in=20, revenue="50000")
    _account("Renews later", renews_in=200, revenue="90000", stage="lapsed", p_alive=0.0)
    _account("Flat-ish", renews_in=20, revenue="90000", trend=-2.0)
    renewal_risk_refresh()
    rows = list(renewal_risk_accounts())
    assert [c.pk for c in rows] == [big.pk, small.pk, falling.pk]
    assert rows[0].revenue_at_risk == pytest.approx(5000.0)
    assert rows[1].revenue_at_risk == pytest.approx(1800.0)
    assert rows[2].revenue_at_risk == pytest.approx(600.0)
    assert [c.pk for c in renewal_risk_accounts(days=15)] == [small.pk]


def test_low_score_alone_puts_an_account_on_the_list():
    c = _account("Quiet", renews_in=5, revenue="1000", p_alive=None)
    ScoreState.objects.filter(customer=c).update(decay_sum=0)
    renewal_risk_refresh()
    (row,) = renewal_risk_accounts()
    assert row.score == 0 and row.revenue_at_risk == pytest.approx(1000.0)  # risk 1 − 0/100


def test_my_accounts_only_shows_the_owners(cs_user, admin_user):
    mine = _account("Mine", renews_in=5, revenue="100", stage="at_risk", owner=cs_user)
    _account("Theirs", renews_in=5, revenue="900", stage="at_risk", owner=admin_user)
    renewal_risk_refresh()
    assert [c.pk for c in renewal_risk_accounts(owner=cs_user)] == [mine.pk]


def test_reason_reads_like_a_sentence():
    assert (
        risk_reason(
            score=31.2,
            trend=-24.4,
            last_action_at=NOW - timedelta(days=41, hours=3),
            last_action_key="login",
            expected_gap_days=6.2,
            signup=date(2025, 1, 1),
            now=NOW,
        )
        == "score 31, down 24 in 30 days; no login for 41 days, usually every 6"
    )
    assert (
        risk_reason(
            score=0,
            trend=None,
            last_action_at=None,
            last_action_key=None,
            expected_gap_days=None,
            signup=date(2026, 5, 1),
            now=NOW,
        )
        == "score 0; no engagement action since signing up 31 days ago"
    )


def test_page_shows_reason_from_engine_state_with_bounded_queries(login, cs_user):
    now = timezone.now()
    for i in range(8):
        c = _account(f"Acct {i}", renews_in=10 + i, revenue=str(1000 + i), stage="cooling")
        TouchpointFactory(customer=c, occurred_at=now - timedelta(days=41, hours=1))
        ScoreState.objects.filter(customer=c).update(
            last_engagement_at=now - timedelta(days=41, hours=1), expected_gap_days=6.0
        )
        customer_note_add(customer=c, author=cs_user, body=f"note {i}", kind="cs_call")
    client = login(cs_user)
    client.get(reverse("renewal-risk"))  # warm caches (content types, settings row)
    with CaptureQueriesContext(connection) as few:
        response = client.get(reverse("renewal-risk"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "no login for 41 days, usually every 6" in html
    assert "note 7" in html and "Acct 7" in html
    for i in range(8, 20):
        c = _account(f"Acct {i}", renews_in=10 + i, revenue="10", stage="cooling")
        customer_note_add(customer=c, author=cs_user, body=f"note {i}", kind="meeting")
    renewal_risk_refresh()
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("renewal-risk"))
    assert len(many) == len(few) <= 11  # the list, its notes, last actions, and the CS task list


def test_bad_window_gets_a_clear_error(login, cs_user):
    response = login(cs_user).get(reverse("renewal-risk"), {"days": "-3"})
    assert response.status_code == 400
    assert "greater than or equal to 1" in response.content.decode()


@pytest.mark.parametrize(
    ("user_fixture", "status"),
    [("admin_user", 200), ("cs_user", 200), ("marketer", 403), ("no_role_user", 403)],
)
def test_only_customer_success_and_admins(request, login, user_fixture, status):
    client = login(request.getfixturevalue(user_fixture))
    assert client.get(reverse("renewal-risk")).status_code == status
    assert client.get(reverse("renewal-risk-export")).status_code == status
    c = CustomerFactory()
    assert client.post(
        reverse("customer-note-create", args=[c.pk]), {"kind": "cs_call"}
    ).status_code in (
        302,
        status,
    )
    assert CustomerNote.objects.count() == (1 if status == 200 else 0)


def test_mark_contacted_records_a_touchpoint_the_engine_sees(login, cs_user):
    c = _account("Acme", renews_in=5, revenue="100", stage="at_risk")
    response = login(cs_user).post(
        reverse("customer-note-create", args=[c.pk]),
        {"kind": "meeting", "body": "Walked through the new reports"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Walked through the new reports" in html
    note = CustomerNote.objects.get()
    assert note.author == cs_user and note.touchpoint.type.key == "meeting"
    assert note.touchpoint.source == "cs"
    assert PendingTouchpoint.objects.filter(touchpoint=note.touchpoint).exists()


def test_empty_note_means_contacted_and_errors_lose_nothing(login, cs_user):
    c = CustomerFactory()
    note = customer_note_add(customer=c, author=cs_user, body="  ", kind="cs_call")
    assert note.body == "Called."
    with pytest.raises(NoteError, match="under 4000"):
        customer_note_add(customer=c, author=cs_user, body="x" * 4001, kind="cs_call")
    with pytest.raises(NoteError, match="Choose how"):
        customer_note_add(customer=c, author=cs_user, body="hi", kind="carrier_pigeon")
    assert CustomerNote.objects.count() == 1 and Touchpoint.objects.count() == 1
    response = login(cs_user).post(
        reverse("customer-note-create", args=[c.pk]),
        {"kind": "cs_call", "body": "y" * 4001},
        HTTP_HX_REQUEST="true",
    )
    assert "Ensure this value has at most 4000 characters" in response.content.decode()
    assert CustomerNote.objects.count() == 1


def test_export_neutralizes_formulas(login, cs_user):
    _account('=HYPERLINK("http://evil")', renews_in=5, revenue="100", stage="lapsed")
    response = login(cs_user).get(reverse("renewal-risk-export"))
    body = b"".join(response.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("external_id,name,company")
    assert "'=HYPERLINK" in lines[1] and ",100.00," in lines[1]
    assert response["Content-Disposition"].startswith('attachment; filename="renewal-risk-')


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_export_neutralizes_every_formula_prefix_and_keeps_negative_numbers(login, cs_user, prefix):
    """The shared ``customers.export.csv_cell`` writes the cells: text from data that a
    spreadsheet would run gets an apostrophe; a negative trend we format stays a number."""
    c = _account(f"{prefix}cmd|' /C calc'!A0", renews_in=5, revenue="100", trend=-12.5)
    customer_note_add(customer=c, author=cs_user, body="@SUM(1+1)", kind="cs_call")
    response = login(cs_user).get(reverse("renewal-risk-export"))
    body = b"".join(response.streaming_content).decode()
    header, row = list(csv.reader(io.StringIO(body)))
    cells = dict(zip(header, row, strict=True))
    assert cells["name"] == f"'{prefix}cmd|' /C calc'!A0"
    assert cells["last_note"] == "'@SUM(1+1)"
    assert cells["trend_30d"] == "-12.5"
