"""Group commit: concurrent calls share transactions, yet each call succeeds or fails on its own."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from remediator.audit.group_commit import ClosedError, GroupCommitWriter


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
    return db


async def test_a_failing_call_rolls_back_only_its_own_writes_in_a_shared_batch(tmp_path: Path) -> None:
    writer = GroupCommitWriter(connect(tmp_path / "a.db"))

    def insert(*values: int) -> None:
        for value in values:
            writer._db.execute("INSERT INTO t (v) VALUES (?)", (value,))

    results = await asyncio.gather(
        *(writer.run(insert, v) for v in range(50)),
        writer.run(insert, 100, 1),  # 100 is written, then 1 collides: both must be undone
        return_exceptions=True,
    )
    assert all(r is None for r in results[:50])
    assert isinstance(results[50], sqlite3.IntegrityError)
    rows = await writer.run(lambda: [r[0] for r in writer._db.execute("SELECT v FROM t ORDER BY v")])
    assert rows == list(range(50))
    await writer.close()
    with pytest.raises(ClosedError):
        await writer.run(insert, 7)


async def test_a_call_made_in_the_next_turn_of_the_loop_joins_the_same_commit(tmp_path: Path) -> None:
    db = connect(tmp_path / "turns.db")
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    writer = GroupCommitWriter(db)

    def insert(value: int) -> None:
        db.execute("INSERT INTO t (v) VALUES (?)", (value,))

    first = asyncio.create_task(writer.run(insert, 1))
    await asyncio.sleep(0)  # `first` has queued its call; this turn ends
    second = asyncio.create_task(writer.run(insert, 2))  # as a request whose bytes came in the next poll
    await asyncio.gather(first, second)
    assert statements.count("COMMIT") == 1
    await writer.run(insert, 3)  # and a call alone is still committed
    assert statements.count("COMMIT") == 2
    await writer.close()


async def test_a_cancelled_caller_does_not_undo_its_write_and_close_drains_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    writer = GroupCommitWriter(connect(path))

    def insert(value: int) -> None:
        writer._db.execute("INSERT INTO t (v) VALUES (?)", (value,))

    task = asyncio.create_task(writer.run(insert, 1))
    await asyncio.sleep(0)
    task.cancel()
    pending = [asyncio.create_task(writer.run(insert, v)) for v in range(2, 200)]
    await asyncio.sleep(0)  # every call is queued
    await writer.close()
    await asyncio.gather(*pending)
    check = sqlite3.connect(path)
    assert check.execute("SELECT count(*) FROM t").fetchone()[0] == 199
    check.close()
