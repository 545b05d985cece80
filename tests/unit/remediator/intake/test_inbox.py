"""The inbox: payloads kept verbatim, and the alerts not marked done resumed in arrival order."""

from __future__ import annotations

import json
from pathlib import Path

from remediator.audit.sqlite import SqliteStore
from remediator.state.base import Delivery
from tests.remediator_helpers import alert, payload


def body_of(alerts: int) -> bytes:
    return json.dumps(payload(*(alert(instance=f"i{n}") for n in range(alerts)))).encode()


async def test_a_restart_resumes_exactly_the_alerts_not_marked_done_in_arrival_order(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "audit.sqlite3")
    first, received = await store.receive(body_of(40), 40)
    second, _ = await store.receive(body_of(60), 60)
    await store.record([], done=Delivery(first, 3, received))
    await store.close()
    reopened = SqliteStore(tmp_path / "audit.sqlite3")
    pending = await reopened.pending()
    await reopened.close()
    assert [(d.inbox_id, d.position) for d, _ in pending] == [(first, n) for n in range(40) if n != 3] + [
        (second, n) for n in range(60)
    ]
    assert pending[3][1].labels["instance"] == "i4"
