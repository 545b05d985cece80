"""One thread owns the SQLite connection and commits whatever is waiting in a single transaction (group
commit): concurrent workers share commits and thread hand-offs instead of queueing on a lock."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_BATCH = 512


@dataclass
class _Call:
    function: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class ClosedError(RuntimeError):
    """The writer was used after close()."""


class GroupCommitWriter:
    """Runs functions against one connection on its own thread; each batch is one transaction, and each
    function runs under its own savepoint, so one failing call leaves the others' writes in place."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="tradeops-sqlite", daemon=True)
        self._thread.start()

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run `function(*args)` in the next batch; return once that batch has committed."""
        if self._closed:
            raise ClosedError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._calls.put(_Call(function, args, loop, future))
        return await future

    def _serve(self) -> None:
        while True:
            first = self._calls.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._calls.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(batch)
            if stop:
                break
        self._db.close()

    def _run_batch(self, batch: list[_Call]) -> None:
        outcomes: list[tuple[_Call, bool, Any]] = []
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for call in batch:
                self._db.execute("SAVEPOINT call")
                try:
                    value = call.function(*call.args)
                except Exception as error:  # noqa: BLE001 - handed to the caller, whose await raises it
                    self._db.execute("ROLLBACK TO call")
                    self._db.execute("RELEASE call")
                    outcomes.append((call, False, error))
                else:
                    self._db.execute("RELEASE call")
                    outcomes.append((call, True, value))
            self._db.execute("COMMIT")
        except sqlite3.Error as error:  # the commit itself failed (disk full, I/O): nothing of the batch holds
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            outcomes = [(call, False, error) for call in batch]
        for loop, ready in _by_loop(outcomes).items():
            loop.call_soon_threadsafe(_deliver, ready)

    async def close(self) -> None:
        """Finish what is queued, then close the connection."""
        if not self._closed:
            self._closed = True
            self._calls.put(None)
            await asyncio.to_thread(self._thread.join)


def _by_loop(outcomes: list[tuple[_Call, bool, Any]]) -> dict[asyncio.AbstractEventLoop, list[tuple[_Call, bool, Any]]]:
    grouped: dict[asyncio.AbstractEventLoop, list[tuple[_Call, bool, Any]]] = {}
    for outcome in outcomes:
        grouped.setdefault(outcome[0].loop, []).append(outcome)
    return grouped


def _deliver(ready: list[tuple[_Call, bool, Any]]) -> None:
    for call, ok, value in ready:
        if call.future.done():  # the caller was cancelled; the write stands
            continue
        if ok:
            call.future.set_result(value)
        else:
            call.future.set_exception(value)
