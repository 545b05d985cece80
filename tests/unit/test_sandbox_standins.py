"""The host command stand-ins of seed 004 (`pm2 jlist`, backup scripts), run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sandbox import standins


def run(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "sandbox.standins", "--state-dir", str(state), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)


def test_jlist_prints_the_process_list_the_sandbox_wrote_in_pm2s_shape(tmp_path: Path) -> None:
    assert json.loads(run(tmp_path, "jlist").stdout) == []
    standins.write_pm2(tmp_path, {"trading-engine": 7, "rate-gate": 0})
    listed = json.loads(run(tmp_path, "jlist").stdout)
    assert [(p["name"], p["pm2_env"]["restart_time"]) for p in listed] == [("trading-engine", 7), ("rate-gate", 0)]


def test_backup_status_exits_with_the_last_runs_code_until_a_manual_run_succeeds(tmp_path: Path) -> None:
    assert run(tmp_path, "backup-status", "postgres").returncode == 0
    standins.write_status(tmp_path, "postgres", 1)
    assert run(tmp_path, "backup-status", "postgres").returncode == 1
    assert run(tmp_path, "backup-status", "redis").returncode == 0
    assert run(tmp_path, "backup-run", "postgres").returncode == 0
    assert run(tmp_path, "backup-status", "postgres").returncode == 0


def test_an_unknown_backup_set_or_a_missing_one_is_a_usage_error(tmp_path: Path) -> None:
    assert run(tmp_path, "backup-status", "mysql").returncode == 2
    assert run(tmp_path, "backup-run").returncode == 2
