"""Stand-ins for the commands seed 004's checks and playbooks run on the host: `pm2 jlist` and the backup
scripts (their status and a manual run). They read and write small files under the sandbox's state
directory, which the sandbox's faults change; run as `python -m sandbox.standins --state-dir DIR COMMAND`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

PM2_FILE = "pm2.json"
BACKUP_SETS = ("postgres", "redis")


def pm2_path(state_dir: Path) -> Path:
    """Where the simulated PM2 process list is."""
    return state_dir / PM2_FILE


def status_path(state_dir: Path, backup_set: str) -> Path:
    """Where the exit code of a backup set's last run is."""
    return state_dir / f"backup-{backup_set}.status"


def restart_request_path(state_dir: Path, process: str) -> Path:
    """Where `pm2 restart --only PROCESS` leaves its request for the sandbox (the simulated PM2 daemon)."""
    return state_dir / f"pm2-restart-{process}.request"


def take_restart_requests(state_dir: Path, processes: Iterable[str]) -> list[str]:
    """The processes whose restart was asked for since the last call; each request is consumed."""
    taken = []
    for process in processes:
        path = restart_request_path(state_dir, process)
        if path.exists():
            path.unlink(missing_ok=True)
            taken.append(process)
    return taken


def write_pm2(state_dir: Path, restarts: dict[str, int], memory: dict[str, int] | None = None) -> None:
    """Write the process list as `pm2 jlist` prints it (the fields the exporter reads: restarts, memory)."""
    processes = [
        {
            "name": name,
            "pm2_env": {"restart_time": count, "status": "online"},
            "monit": {"memory": (memory or {}).get(name, 0), "cpu": 1},
        }
        for name, count in restarts.items()
    ]
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = pm2_path(state_dir).with_suffix(".tmp")
    temporary.write_text(json.dumps(processes))
    temporary.replace(pm2_path(state_dir))


def write_status(state_dir: Path, backup_set: str, code: int) -> None:
    """Record the exit code of a backup set's last run."""
    state_dir.mkdir(parents=True, exist_ok=True)
    status_path(state_dir, backup_set).write_text(f"{code}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """`jlist` prints the process list; `pm2-restart NAME` restarts one known process (its memory is freed; a
    crash loop goes on, as a restart does not fix its cause); `backup-status SET` exits with the last run's code;
    `backup-run SET` runs the backup (it succeeds) and records exit code 0."""
    parser = argparse.ArgumentParser(prog="sandbox-standins")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("command", choices=["jlist", "pm2-restart", "backup-status", "backup-run"])
    parser.add_argument("backup_set", nargs="?", help="the backup set, or the PM2 process to restart")
    args = parser.parse_args(argv)
    if args.command == "jlist":
        path = pm2_path(args.state_dir)
        print(path.read_text() if path.exists() else "[]")
        return 0
    if args.command == "pm2-restart":  # `pm2 restart --only NAME`: PM2 restarts it; a crash loop goes on
        path = pm2_path(args.state_dir)
        names = {p["name"] for p in json.loads(path.read_text())} if path.exists() else set()
        if args.backup_set not in names:
            parser.error(f"unknown PM2 process {args.backup_set!r}")
        restart_request_path(args.state_dir, args.backup_set).touch()  # the sandbox restarts it (memory freed)
        print(f"[PM2] Applying action restartProcessId on app [{args.backup_set}]")
        return 0
    if args.backup_set not in BACKUP_SETS:
        parser.error(f"a backup set is required: one of {', '.join(BACKUP_SETS)}")
    if args.command == "backup-status":
        path = status_path(args.state_dir, args.backup_set)
        return int(path.read_text().strip()) if path.exists() else 0
    write_status(args.state_dir, args.backup_set, 0)
    print(f"backup of {args.backup_set} written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
