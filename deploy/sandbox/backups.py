"""Backup files on disk, as MasterTrade's backup scripts leave them (seed 000, Backup & Recovery) and as
TradeMaster's nightly full backup does (seed 003, Morning Checklist: /var/backups/postgresql/full/)."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BackupSet:
    """Where one set of backups lives and how its files are named."""

    name: str
    directory: str
    pattern: str
    suffix: str
    site_directory: str = ""  # where the runbook keeps the set on a real host, when the profile names that path


BACKUP_SETS: dict[str, BackupSet] = {
    "postgres_daily": BackupSet("postgres_daily", "database/backups/daily", "mastertrade_backup_", ".sql.gz"),
    "postgres_incremental": BackupSet(
        "postgres_incremental", "database/backups/incremental", "mastertrade_incr_", ".sql.gz"
    ),
    "redis": BackupSet("redis", "redis/backups", "dump_", ".rdb"),
    "postgres_full": BackupSet(
        "postgres_full",
        "postgresql/full",
        "trademaster_full_",
        ".sql.gz",
        site_directory="/var/backups/postgresql/full",
    ),
}


def sandbox_glob(root: Path, path_glob: str) -> str | None:
    """The exporter glob of a real host's backup directory pointed at the set the sandbox writes there, or None
    when no set of the sandbox stands for that directory."""
    directory, _, name = path_glob.rpartition("/")
    for backup_set in BACKUP_SETS.values():
        if backup_set.site_directory and directory == backup_set.site_directory:
            return str(set_directory(root, backup_set) / name)
    return None


# An RDB file: magic "REDIS", a 4-digit version, an empty body, the EOF opcode and an 8-byte checksum.
RDB_CONTENT = b"REDIS0011" + b"\xfa\x09redis-ver\x057.0.0" + b"\xff" + b"\x00" * 8


def set_directory(root: Path, backup_set: BackupSet) -> Path:
    """Return the directory of one backup set under the backup root."""
    return root / backup_set.directory


def write_backup(root: Path, name: str, when: dt.datetime | None = None) -> Path:
    """Write one complete, valid backup file for the set, timestamped `when` (default now)."""
    backup_set = BACKUP_SETS[name]
    stamp = when or dt.datetime.now(dt.UTC)
    directory = set_directory(root, backup_set)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{backup_set.pattern}{stamp:%Y%m%d_%H%M%S}{backup_set.suffix}"
    temporary = path.with_name(path.name + ".partial")
    if backup_set.suffix == ".rdb":
        temporary.write_bytes(RDB_CONTENT)
    else:
        with gzip.open(temporary, "wb") as handle:
            handle.write(f"-- tradeops sandbox backup {backup_set.name}\nSELECT 1;\n".encode() * 64)
    os.replace(temporary, path)
    epoch = stamp.timestamp()
    os.utime(path, (epoch, epoch))
    return path


def backup_files(root: Path, name: str) -> list[Path]:
    """List the set's backup files, newest first."""
    backup_set = BACKUP_SETS[name]
    directory = set_directory(root, backup_set)
    if not directory.is_dir():
        return []
    files = [p for p in directory.glob(f"{backup_set.pattern}*{backup_set.suffix}") if p.is_file()]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def age_backups(root: Path, name: str, age: dt.timedelta) -> int:
    """Move every file of the set `age` into the past (mtime); return how many were aged."""
    files = backup_files(root, name)
    for path in files:
        mtime = path.stat().st_mtime - age.total_seconds()
        os.utime(path, (mtime, mtime))
    return len(files)


def remove_backups(root: Path, name: str) -> int:
    """Delete every file of the set; return how many were removed."""
    files = backup_files(root, name)
    for path in files:
        path.unlink()
    return len(files)


def newest_age_seconds(root: Path, name: str) -> float | None:
    """Return how old the set's newest file is, or None when the set has no file."""
    files = backup_files(root, name)
    if not files:
        return None
    return time.time() - files[0].stat().st_mtime
