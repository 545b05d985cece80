"""Group commit: concurrent calls share transactions, yet each call succeeds or fails on its own."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import pytest

from remediator.audit.group_commit import CHECKPOINT_EVERY_COMMITS, ClosedError, GroupCommitWriter


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


async def test_no_commit_runs_beside_a_checkpoint_so_each_one_starts_the_log_over(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (v INTEGER NOT NULL, pad TEXT)"
    )
    passes: list[tuple[int, int, int]] = []  # (busy, frames in the log, frames copied), in call order

    def checkpoint() -> None:
        time.sleep(0.02)  # a slow disk: without the pause, commits land beside it and the log never restarts
        with contextlib.closing(sqlite3.connect(path)) as own:
            passes.append(own.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    writer = GroupCommitWriter(db, checkpoint)

    def insert(value: int) -> None:
        db.execute("INSERT INTO t (v, pad) VALUES (?, ?)", (value, "x" * 2000))

    commits = CHECKPOINT_EVERY_COMMITS * 6
    for value in range(commits):  # a steady load: one commit after another
        await writer.run(insert, value)
    await writer.close()
    assert len(passes) % 2 == 0  # every checkpoint ran its second pass
    held = passes[1::2]  # the first pass runs beside commits and may leave frames; the held one may not
    assert all(busy == 0 and log == copied for busy, log, copied in held)
    logs = [log for _, log, _ in held]
    assert len(logs) >= 5
    assert max(logs) <= 2 * min(logs)  # each checkpoint saw one interval's log, not everything since the start
    with contextlib.closing(sqlite3.connect(path)) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone()[0] == commits


async def test_a_failing_checkpoint_is_logged_and_the_held_commits_still_go_through(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = connect(tmp_path / "c.db")

    def broken() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    writer = GroupCommitWriter(db, broken)

    def insert(value: int) -> None:
        db.execute("INSERT INTO t (v) VALUES (?)", (value,))

    for value in range(CHECKPOINT_EVERY_COMMITS * 2 + 1):
        await asyncio.wait_for(writer.run(insert, value), 5)  # never held for ever by the failed checkpoint
    await writer.close()
    assert "checkpoint_failed" in caplog.text
    with contextlib.closing(sqlite3.connect(tmp_path / "c.db")) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone()[0] == CHECKPOINT_EVERY_COMMITS * 2 + 1
