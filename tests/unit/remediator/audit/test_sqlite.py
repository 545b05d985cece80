"""The SQLite audit store's promises about its own files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from remediator.audit.sqlite import SqliteStore

WRITTEN_BYTES = 30_000_000  # in all, far more than the bound below


@pytest.mark.parametrize(
    ("payloads", "concurrent"),
    [(10_000, True), (300, False)],
    ids=["a storm of concurrent webhooks (few large batches)", "a steady load (one commit after another)"],
)
async def test_the_write_ahead_log_stays_bounded_however_the_writes_arrive(
    tmp_path: Path, payloads: int, concurrent: bool
) -> None:
    path = tmp_path / "audit.sqlite3"
    store = SqliteStore(path)
    largest = 0
    body = b"x" * (WRITTEN_BYTES // payloads)

    async def watch() -> None:
        nonlocal largest
        while True:
            largest = max(largest, path.with_name(path.name + "-wal").stat().st_size)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    try:
        if concurrent:
            await asyncio.gather(*(store.receive(body, 1) for _ in range(payloads)))
        else:
            for _ in range(payloads):
                await store.receive(body, 1)
    finally:
        watcher.cancel()
        await store.close()
    assert largest <= 16 * 2**20, f"the log grew to {largest / 2**20:.1f} MiB"
