"""The console's approvals read model: a pending approval whose deadline passed is no longer offered, and an
approval the timers expired is answered as expired (not only as not pending), on a real memory state backend."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from remediator.audit.reads import IncidentRow
from remediator.audit.sqlite import SqliteStore
from remediator.console.approvals import pending_view, precise
from remediator.runtime.playbook import approval_id
from remediator.state.incident import Incident, now
from remediator.state.memory import MemoryState
from tests.remediator_helpers import config

KEY = "f00d@2026-11-22T03:00:00+00:00#purge-orders"


def waiting(state: str = "pending", minutes: float = 5) -> Incident:
    until = now() + dt.timedelta(minutes=minutes)
    approval = {"nonce": "n1", "step": "0", "name": "purge", "action": "log", "state": state}
    found = Incident(KEY, "QueueDepthCritical", {}, "purge-orders", "open", 1, now(), None, False, None)
    found.approval = {**approval, "until": until.isoformat()}
    found.approval_until = until if state == "pending" else None
    return found


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[MemoryState]:
    store = SqliteStore(tmp_path / "audit.sqlite3")
    await store.open()
    backend = MemoryState(store, tmp_path / "state.sqlite3")
    yield backend
    await backend.close()
    await store.close()


def test_a_pending_approval_is_offered_until_its_deadline_and_not_after(tmp_path: Path) -> None:
    cfg = config(tmp_path, "http://127.0.0.1:1")
    assert pending_view(cfg, IncidentRow(waiting(), now())) is not None
    assert pending_view(cfg, IncidentRow(waiting(minutes=-1), now())) is None
    assert pending_view(cfg, IncidentRow(waiting("expired"), now())) is None


async def test_an_approval_the_timers_expired_answers_expired_and_nothing_else_is_changed(
    state: MemoryState,
) -> None:
    await state.save(waiting("expired"))
    assert await precise(state, approval_id(KEY, "n1"), "not_pending") == "expired"
    assert await precise(state, approval_id(KEY, "other"), "not_pending") == "not_pending"  # not its nonce
    assert await precise(state, approval_id("missing#rule", "n1"), "not_pending") == "not_pending"
    assert await precise(state, "not-an-id", "not_pending") == "not_pending"
    for result in ("approved", "denied", "unknown", "resolved", "expired"):
        assert await precise(state, approval_id(KEY, "n1"), result) == result
    await state.save(waiting("denied"))
    assert await precise(state, approval_id(KEY, "n1"), "not_pending") == "not_pending"
