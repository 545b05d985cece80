"""Backup freshness from the files on disk (seed 000, Daily Operations 6 and Backup & Recovery)."""

from __future__ import annotations

import asyncio
import glob
import os
import zlib
from pathlib import Path

from exporter.config import BackupConfig
from exporter.probes.base import Probe, ProbeError
from exporter.sink import MetricSink

CHUNK = 1024 * 1024


def gzip_intact(path: Path, max_bytes: int) -> bool:
    """Decompress the whole gzip stream (up to max_bytes of input) and check it ends where it should."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    read = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                read += len(chunk)
                if read > max_bytes:
                    return True  # too large to check within budget: not reported as corrupt
                decompressor.decompress(chunk, CHUNK)
                while decompressor.unconsumed_tail:
                    decompressor.decompress(decompressor.unconsumed_tail, CHUNK)
                if decompressor.eof:
                    break
    except zlib.error:
        return False
    return decompressor.eof


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
        await asyncio.to_thread(self._collect, sink)

    def _collect(self, sink: MetricSink) -> None:
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
                    gzip_intact(newest, self.config.integrity_max_bytes)
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
