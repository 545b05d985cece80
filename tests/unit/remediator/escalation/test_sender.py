"""The sender's pure parts: backoff with jitter, the page-rate window, and how a round splits into POSTs."""

from __future__ import annotations

import random

from remediator.escalation.records import Kind, OutboxRecord
from remediator.escalation.sender import RateWindow, backoff, plan_round


def record(record_id: int, kind: Kind = "trigger") -> OutboxRecord:
    return OutboxRecord(record_id, f"i{record_id}", "webhook:generic", kind, "A", "r", "{}", 0.0, 0.0, 0, "pending")


def test_backoff_grows_exponentially_within_its_cap_with_jitter() -> None:
    rng = random.Random(7)
    for attempts in range(1, 80):
        ceiling = min(30.0, 0.5 * 2 ** (attempts - 1))
        delays = {backoff(attempts, 0.5, 30.0, rng) for _ in range(20)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1  # jittered: retries of many records spread out


def test_the_rate_window_counts_the_trailing_minute_and_forgets_refused_pages() -> None:
    window = RateWindow(3)
    for at in (0.0, 1.0, 2.0):
        window.note(at)
    assert window.room(2.0) == 0
    assert window.next_room_at() == 60.0
    window.forget(1.0)
    assert window.room(2.0) == 1
    assert window.room(60.0) == 2  # the page at 0 s left the window


def test_records_within_the_room_go_one_by_one_and_a_page_is_left_for_later() -> None:
    sends, left = plan_round([record(1), record(2)], 3, coalesce_resolves=True)
    assert [(len(s.records), s.summary) for s in sends] == [(1, False), (1, False)]
    assert left == []
    sends, left = plan_round([record(1)], 1, coalesce_resolves=True)
    assert [(len(s.records), s.summary) for s in sends] == [(1, False)]


def test_records_over_the_room_are_coalesced_into_one_summary() -> None:
    records = [record(i) for i in range(1, 40)] + [record(40, "resolve")]
    sends, left = plan_round(records, 3, coalesce_resolves=True)
    assert len(sends) == 1
    assert sends[0].summary
    assert [r.id for r in sends[0].records] == list(range(1, 41))
    assert left == []


def test_pagerduty_resolves_are_never_coalesced_and_wait_for_room() -> None:
    records = [record(1), record(2), record(3, "resolve"), record(4, "resolve"), record(5, "resolve")]
    sends, left = plan_round(records, 3, coalesce_resolves=False)
    assert [([r.id for r in s.records], s.summary) for s in sends] == [([1, 2], True), ([3], False), ([4], False)]
    assert left == [5]


def test_no_room_sends_nothing_and_releases_everything() -> None:
    assert plan_round([record(1), record(2)], 0, coalesce_resolves=True) == ([], [1, 2])
