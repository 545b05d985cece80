"""Backup freshness from the files on disk (seed 000, Daily Operations 6 and Backup & Recovery).

The listing and the integrity check run in a thread of their own per scrape, which checks a stop flag between
1 MiB steps (a read, or one block of decompressed output): when the probe's deadline passes, the flag is set and
the thread ends after the step it is in. A read blocked in the kernel (a dead network mount) holds its thread until
the read returns; the scrape still answers at its deadline."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from exporter.config import BackupConfig
from exporter.probes.base import Probe, ProbeError
from exporter.sink import MetricSink

CHUNK = 1024 * 1024
T = TypeVar("T")


class CheckStoppedError(Exception):
    """A file check saw its stop flag set and gave up."""


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise CheckStoppedError("stopped at the probe's deadline")


def gzip_intact(path: Path, max_bytes: int, stop: threading.Event | None = None) -> bool:
    """Decompress the whole gzip stream (up to max_bytes of input) and check it ends where it should; raise
    CheckStoppedError within one 1 MiB step (a read or a block of output) of stop being set."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    read = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                _check(stop)
                read += len(chunk)
                if read > max_bytes:
                    return True  # too large to check within budget: not reported as corrupt
                decompressor.decompress(chunk, CHUNK)
                while decompressor.unconsumed_tail:
                    _check(stop)
                    decompressor.decompress(decompressor.unconsumed_tail, CHUNK)
                if decompressor.eof:
                    break
    except zlib.error:
        return False
    return decompressor.eof


async def run_stoppable(function: Callable[[threading.Event], T], name: str) -> T:
    """Run function(stop) in a new thread and return its result; when the caller is cancelled (its deadline), set
    stop so that the thread ends at its next check, and do not wait for it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    stop = threading.Event()

    def deliver(result: T | None, error: BaseException | None) -> None:
        if future.done():  # the caller was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = function(stop)
        except BaseException as raised:  # noqa: BLE001 - the thread's boundary: the error goes to the awaiting task
            error = raised
        with contextlib.suppress(RuntimeError):  # the event loop closed meanwhile: nobody is waiting
            loop.call_soon_threadsafe(deliver, result, error)

    threading.Thread(target=target, name=name, daemon=True).start()
    try:
        return await future
    finally:
        stop.set()


def rdb_intact(path: Path) -> bool:
    """Check an RDB file's magic ('REDIS' and a 4-digit version) and its EOF opcode before the checksum."""
    size = path.stat().st_size
    if size < 18:
        return False
    with path.open("rb") as handle:
        head = handle.read(9)
        handle.seek(size - 9)
        tail = handle.read(9)
    return head[:5] == b"REDIS" and head[5:9].isdigit() and tail[0] == 0xFF


class BackupProbe(Probe):
    """Newest file's age and size, file count and an integrity check of the newest file."""

    kind = "backup"

    def __init__(self, config: BackupConfig) -> None:
        super().__init__(config.name, config.timeout_seconds)
        self.config = config

    async def collect(self, sink: MetricSink) -> None:
        await run_stoppable(lambda stop: self._collect(sink, stop), f"tradeops-backup-{self.target}")

    def _collect(self, sink: MetricSink, stop: threading.Event) -> None:
        directory = Path(self.config.path_glob).parent
        if not directory.is_dir():
            raise ProbeError("missing_directory", f"{directory} does not exist")
        if not os.access(directory, os.R_OK | os.X_OK):
            raise ProbeError("unreadable", f"{directory} is not readable")
        files: list[tuple[float, int, Path]] = []
        for name in glob.glob(self.config.path_glob):
            path = Path(name)
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.is_file():
                files.append((stat.st_mtime, stat.st_size, path))
        labels = {"set": self.target}
        sink.gauge("tradeops_backup_files", "Backup files matching the set's glob.", labels, len(files))
        if not files:
            return
        mtime, size, newest = max(files)
        sink.gauge("tradeops_backup_newest_timestamp_seconds", "Modification time of the newest backup.", labels, mtime)
        sink.gauge("tradeops_backup_newest_size_bytes", "Size of the newest backup.", labels, size)
        if self.config.integrity != "none":
            try:
                intact = (
                    gzip_intact(newest, self.config.integrity_max_bytes, stop)
                    if self.config.integrity == "gzip"
                    else rdb_intact(newest)
                )
            except OSError as error:
                raise ProbeError("unreadable", f"{newest}: {error}") from error
            sink.gauge(
                "tradeops_backup_newest_intact",
                "1 when the newest backup passes its integrity check (gzip stream, RDB magic).",
                labels,
                1 if intact else 0,
            )
