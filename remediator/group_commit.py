"""Group commit on the event loop: the calls made during one turn of the loop are committed together, in one
SQLite transaction, by a callback that runs right after them.

The connection is used on the loop's own thread. A writer thread was tried first: its many short SQLite calls
each released and re-took the GIL from a busy loop, so it spent most of its time waiting for it (measured in
docs/benchmarks.md). With WAL and synchronous=NORMAL a commit is a write to the OS, not an fsync; the fsync
happens at checkpoints, which run on a thread of their own with their own connection.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BATCH = 512
CHECKPOINT_EVERY_COMMITS = 500


@dataclass
class _Call:
    function: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]


class ClosedError(RuntimeError):
    """The writer was used after close()."""


class GroupCommitWriter:
    """Runs functions against one connection in batches; each batch is one transaction, and a failing call
    leaves the others' writes in place. A batch with a failing call runs again, so a function must touch
    nothing but the database."""

    def __init__(self, db: sqlite3.Connection, checkpoint: Callable[[], None] | None = None) -> None:
        self._db = db
        self._checkpoint = checkpoint
        self._calls: list[_Call] = []
        self._scheduled = False
        self._closed = False
        self._commits = 0
        self._checkpointing: asyncio.Task[None] | None = None

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run `function(*args)` in this turn's batch; return once that batch has committed."""
        if self._closed:
            raise ClosedError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._calls.append(_Call(function, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        if not self._calls:
            return
        while self._calls:
            batch, self._calls = self._calls[:MAX_BATCH], self._calls[MAX_BATCH:]
            self._run_batch(batch)
        self._commits += 1
        due = self._checkpoint is not None and self._commits % CHECKPOINT_EVERY_COMMITS == 0
        if due and (self._checkpointing is None or self._checkpointing.done()):
            assert self._checkpoint is not None
            self._checkpointing = asyncio.get_running_loop().create_task(asyncio.to_thread(self._checkpoint))

    def _run_batch(self, batch: list[_Call]) -> None:
        try:
            # Optimistically as one plain transaction; only when a call fails is the batch run again with a
            # savepoint per call, so that call's writes alone are undone.
            outcomes = self._transaction(batch, isolated=False) or self._transaction(batch, isolated=True)
        except sqlite3.Error as error:  # the commit itself failed (disk full, I/O): nothing of the batch holds
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            outcomes = [(call, False, error) for call in batch]
        for call, ok, value in outcomes:
            if call.future.done():  # the caller was cancelled; the write stands
                continue
            if ok:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)

    def _transaction(self, batch: list[_Call], *, isolated: bool) -> list[tuple[_Call, bool, Any]]:
        """Run the batch in one transaction; not isolated, the first failing call rolls it all back (returns [])."""
        outcomes: list[tuple[_Call, bool, Any]] = []
        self._db.execute("BEGIN IMMEDIATE")
        for call in batch:
            if isolated:
                self._db.execute("SAVEPOINT call")
            try:
                value = call.function(*call.args)
            except Exception as error:  # noqa: BLE001 - handed to the caller, whose await raises it
                if not isolated:
                    self._db.execute("ROLLBACK")
                    return []
                self._db.execute("ROLLBACK TO call")
                self._db.execute("RELEASE call")
                outcomes.append((call, False, error))
            else:
                if isolated:
                    self._db.execute("RELEASE call")
                outcomes.append((call, True, value))
        self._db.execute("COMMIT")
        return outcomes

    async def close(self) -> None:
        """Commit what is queued, wait for a running checkpoint, then close the connection."""
        if self._closed:
            return
        self._closed = True
        self._flush()
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        self._db.close()
