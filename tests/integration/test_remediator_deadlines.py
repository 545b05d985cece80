"""Deadlines that kill: a command that outlives its rule's deadline or its own timeout is ended with every
process it started (real processes, through a running remediator), and what it printed so far is recorded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from remediator.actions.command import CommandAction, CommandParams
from remediator.app import load_checked
from remediator.config import RemediatorConfig
from tests.remediator_helpers import TOKEN, alert, payload, post, recorder, remediator_client, settle

pytestmark = pytest.mark.integration

# A backup-like job: it reports progress, starts a helper that ignores SIGTERM (a grandchild of the
# remediator, in the same process group), writes both pids where the test can read them, then hangs.
LONG_JOB = """
import os, subprocess, sys, time
helper = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
with open(sys.argv[1] + ".tmp", "w") as pids:
    pids.write(f"{os.getpid()} {helper.pid}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
print("dumped table orders", flush=True)
print("dumped table fills", flush=True)
time.sleep(300)
"""


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (a zombie has ended; only its parent's reaping is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_gone(pids: list[int], within: float = 20.0) -> list[int]:
    """Wait (bounded) until the processes have ended; return the ones still alive."""
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def read_pids(path: Path) -> list[int]:
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def kill_leftovers(pids: list[int]) -> None:
    """Clean up after a failing run, so no test leaves a process behind."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def backup_rule(pid_file: Path, rule_deadline: float, command_timeout: float | None) -> dict[str, Any]:
    params: dict[str, Any] = {"argv": [sys.executable, "-c", LONG_JOB, str(pid_file)]}
    if command_timeout is not None:
        params["timeout_seconds"] = command_timeout
    return {
        "name": "run-backup",
        "matchers": ['alertname="BackupStale"'],
        "action": "command",
        "params": params,
        "timeout_seconds": rule_deadline,
        "retries": 0,
        "cooldown_minutes": 0,
    }


def settings(tmp_path: Path, base: str, rule: dict[str, Any]) -> dict[str, Any]:
    return {
        "webhook_token": TOKEN,
        "audit_path": str(tmp_path / "audit.sqlite3"),
        "escalation": {"webhooks": [{"url": f"{base}/escalations"}]},
        "rules": [rule],
    }


async def run_alert(config: RemediatorConfig, pid_file: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Post one BackupStale alert to a serving remediator; return its audit entries and the job's pids."""
    async with remediator_client(config) as (client, remediator):
        status, _ = await post(client, payload(alert(name="BackupStale", set="postgres_daily")))
        assert status == 200
        await settle(remediator)
        entries = await remediator.engine.store.recent(20)
    return entries, read_pids(pid_file)


async def test_a_rule_deadline_shorter_than_the_command_timeout_kills_the_child_and_its_grandchild(
    tmp_path: Path,
) -> None:
    # The shape of both shipped run-backup rules before this change: the rule's deadline (here 3 s) far below
    # the command's own timeout (the default 300 s). --check-config now refuses it; the engine's deadline must
    # still hold if a retry or a slow start brings the deadline first.
    pid_file = tmp_path / "pids"
    async with recorder() as (base, calls):
        config = RemediatorConfig.model_validate(settings(tmp_path, base, backup_rule(pid_file, 3, None)))
        try:
            entries, pids = await run_alert(config, pid_file)
            assert len(pids) == 2, "the job did not start"
            assert await wait_gone(pids) == []
        finally:
            kill_leftovers(read_pids(pid_file))
    outcomes = [(e["event"], e["decision"]) for e in reversed(entries)]
    assert ("action", "failure") in outcomes
    assert ("escalated", "action_failed") in outcomes
    assert len([body for path, body in calls if path == "/escalations"]) == 1


async def test_a_command_timeout_within_the_deadline_kills_the_group_and_records_the_output_so_far(
    tmp_path: Path,
) -> None:
    # What --check-config accepts: the command's own timeout inside the rule's deadline. The config is loaded
    # the way the remediator loads it (load_checked), then served.
    pid_file = tmp_path / "pids"
    async with recorder() as (base, _calls):
        path = tmp_path / "remediator.yml"
        path.write_text(yaml.safe_dump(settings(tmp_path, base, backup_rule(pid_file, 20, 3))))
        try:
            entries, pids = await run_alert(load_checked(path), pid_file)
            assert len(pids) == 2, "the job did not start"
            assert await wait_gone(pids) == []
        finally:
            kill_leftovers(read_pids(pid_file))
    action = next(e for e in entries if e["event"] == "action")
    assert action["decision"] == "failure"
    assert "timed out after 3.0s" in action["detail"]
    assert "dumped table orders" in action["detail"]
    assert "dumped table fills" in action["detail"]


async def test_a_cancelled_command_is_killed_with_its_group_and_the_cancellation_carries_the_output_so_far(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pids"
    params = CommandParams(argv=(sys.executable, "-c", LONG_JOB, str(pid_file)))
    try:
        with pytest.raises(TimeoutError) as raised:
            async with asyncio.timeout(3):  # the engine runs every action under the rule's deadline like this
                await CommandAction().run(params, {})
        pids = read_pids(pid_file)
        assert len(pids) == 2, "the job did not start"
        assert await wait_gone(pids) == []
    finally:
        kill_leftovers(read_pids(pid_file))
    cause = raised.value.__cause__
    assert isinstance(cause, asyncio.CancelledError)
    assert "dumped table fills" in str(cause)
    assert "killed its process group" in str(cause)


async def test_a_command_that_exits_leaving_a_background_process_returns_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pids"
    script = f"sleep 300 & echo $! > {pid_file}; echo started"
    try:
        # Bounded here so that today's failure (waiting for the background process to close the output) shows.
        async with asyncio.timeout(30):
            result = await CommandAction().run(CommandParams(argv=("sh", "-c", script), timeout_seconds=60), {})
        assert "started" in result.detail
        assert await wait_gone(read_pids(pid_file)) == []
    finally:
        kill_leftovers(read_pids(pid_file))
