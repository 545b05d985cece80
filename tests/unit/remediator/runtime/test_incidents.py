"""IncidentRunner.escalate_once: an incident is marked paged only once its page is in the outbox; until then its
still-firing timer is due, so a replica stopped while the page waits for the audit store leaves it to that timer."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from remediator.escalation.channels import Escalation
from remediator.metrics import RemediatorMetrics
from remediator.runtime.incidents import IncidentRunner
from remediator.state.incident import OPEN, Incident, now


class StuckOutbox:
    """An outbox whose audit store never answers: each enqueue waits until cancelled."""

    def __init__(self) -> None:
        self.tried: list[Escalation] = []

    async def enqueue(self, escalation: Escalation) -> None:
        self.tried.append(escalation)
        await asyncio.Event().wait()


class Outbox:
    def __init__(self) -> None:
        self.taken: list[Escalation] = []

    async def enqueue(self, escalation: Escalation) -> None:
        self.taken.append(escalation)


def runner(outbox: Any) -> IncidentRunner:
    unused = cast(Any, None)
    return IncidentRunner(unused, unused, unused, unused, outbox, unused, unused, RemediatorMetrics())


def incident() -> Incident:
    return Incident(
        "f@2026-01-01T00:00:00+00:00#act", "Race", {"alertname": "Race"}, "act", OPEN, 1, None, None, False, None
    )


async def test_an_incident_whose_page_never_reached_the_outbox_is_not_marked_paged_and_its_timer_is_due() -> None:
    outbox = StuckOutbox()
    found = incident()
    before = now()
    waiting = asyncio.create_task(runner(outbox).escalate_once(found, "action_failed", "failed", None))
    await asyncio.sleep(0.05)
    waiting.cancel()  # the replica stops while the page waits
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(outbox.tried) == 1
    assert found.escalated is False
    due = found.due_at()
    assert due is not None
    assert before <= due <= now()


async def test_an_incident_is_marked_paged_once_its_page_is_in_the_outbox_and_pages_once() -> None:
    outbox = Outbox()
    found = incident()
    paging = runner(outbox)
    await paging.escalate_once(found, "action_failed", "failed", None)
    await paging.escalate_once(found, "still_firing", "again", None)
    assert [e.reason for e in outbox.taken] == ["action_failed"]
    assert found.escalated is True
    assert found.escalation_reason == "action_failed"
    assert found.due_at() is None
