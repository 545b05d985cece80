"""Group commit on the event loop: the calls made during one turn of the loop, and the next, are committed
together, in one SQLite transaction, by a callback that runs right after them.

The commit waits for one more poll of the sockets, so the webhook calls whose bytes arrive meanwhile join it,
for one more turn of the loop before each answer. The connection is used on the loop's own thread. With WAL
and synchronous=FULL each commit syncs the log, once per batch of calls; checkpoints run on a thread of
their own with their own connection.

A checkpoint runs twice: first beside further commits, copying most of the log; then once more with commits
held (the calls wait and go in the batch after it), copying what the first left, so that the next transaction
starts the log over from its beginning and the log never only grows. Why this shape, with the figures:
docs/benchmarks.md, "Notes moved from module docstrings".
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.logs import log_event

logger = logging.getLogger("remediator.audit")
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
        self._holding = False  # commits wait while the second pass of a checkpoint runs

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run `function(*args)` in this turn's batch; return once that batch has committed."""
        if self._closed:
            raise ClosedError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._calls.append(_Call(function, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(loop.call_soon, self._flush)  # after one more poll of the sockets: see the module
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        if not self._calls or self._holding:
            return  # the checkpoint flushes what waited once it is done
        while self._calls:
            batch, self._calls = self._calls[:MAX_BATCH], self._calls[MAX_BATCH:]
            self._run_batch(batch)
        self._commits += 1
        due = self._checkpoint is not None and self._commits % CHECKPOINT_EVERY_COMMITS == 0
        if due and (self._checkpointing is None or self._checkpointing.done()):
            self._checkpointing = asyncio.get_running_loop().create_task(self._checkpoint_twice())

    async def _checkpoint_twice(self) -> None:
        assert self._checkpoint is not None
        try:
            await asyncio.to_thread(self._checkpoint)  # most of the log, while commits go on
            self._holding = True
            await asyncio.to_thread(self._checkpoint)  # the rest, with commits held: the log starts over
        except Exception as error:  # noqa: BLE001 - a failed checkpoint loses nothing; the next one copies the log
            log_event(logger, logging.WARNING, "checkpoint_failed", error=repr(error))
        finally:
            self._holding = False
            if self._calls and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)

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
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        self._flush()
        self._db.close()
