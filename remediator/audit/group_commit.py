"""Group commit on the event loop: the calls made during one turn of the loop, and the next, are committed
together, in one SQLite transaction, by a callback that runs right after them.

The commit waits for one more poll of the sockets, so the webhook calls whose bytes arrive meanwhile join it,
for one more turn of the loop before each answer. The connection is used on the loop's own thread. With WAL
and synchronous=FULL each commit syncs the log, once per batch of calls; SQLite's own automatic checkpoint
copies the log back into the database in the commit that finds it over 1,000 pages, so the log stays small.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BATCH = 512


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

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._calls: list[_Call] = []
        self._scheduled = False
        self._closed = False

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
        while self._calls:
            batch, self._calls = self._calls[:MAX_BATCH], self._calls[MAX_BATCH:]
            self._run_batch(batch)

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
        """Commit what is queued, then close the connection."""
        if self._closed:
            return
        self._closed = True
        self._flush()
        self._db.close()
