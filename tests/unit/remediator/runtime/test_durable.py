"""until_recorded: a write the audit store refuses is tried again until taken; anything else is not retried."""

from __future__ import annotations

import pytest

from remediator.runtime import durable
from remediator.state.base import AuditUnavailableError


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("remediator.runtime.durable.asyncio.sleep", sleep)
    return waits


async def test_a_refused_write_is_tried_again_until_taken_each_refusal_counted(no_waiting: list[float]) -> None:
    tries: list[int] = []
    counted: list[int] = []

    async def write() -> str:
        tries.append(1)
        if len(tries) < 6:
            raise AuditUnavailableError("down")
        return "taken"

    assert await durable.until_recorded(write, "journal", lambda: counted.append(1)) == "taken"
    assert len(tries) == 6
    assert len(counted) == 5
    # Backoff with jitter, 0.5 s doubling up to 5 s.
    assert no_waiting[0] == pytest.approx(0.5, rel=0.21)
    assert no_waiting[-1] == pytest.approx(5.0, rel=0.21)
    assert all(wait <= 5.0 * 1.2 for wait in no_waiting)


async def test_an_error_other_than_the_store_refusing_is_raised_at_once() -> None:
    tries: list[int] = []

    async def write() -> None:
        tries.append(1)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await durable.until_recorded(write, "journal")
    assert tries == [1]
