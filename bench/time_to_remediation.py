"""Time to remediation (issue 19's loop figure): the demo's scenarios on a real stack (Prometheus, Alertmanager,
exporter, remediator, sandbox over real PostgreSQL, Redis, RabbitMQ and dockerd), each read from the
components' own timestamps (deploy/sandbox/loop_timing.py) in milliseconds after the fault, beside the physical
floor of the demo's settings (scrape + evaluation + `for:` + `group_wait`). Asserts nothing; stops by itself.

TRADEOPS_BENCH_SCENARIOS names the scenarios (comma-separated; default: the MasterTrade ones that act),
TRADEOPS_BENCH_PROFILE the profile."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

import aiohttp
import asyncpg
from sandbox.loop_timing import STAMPS, component_stamps, floor_seconds
from sandbox.profiles import PROFILES
from sandbox.scenarios import by_name, run_scenario
from sandbox.stack import StackOptions, StackPorts, running_stack

DEFAULT = "service-down,queue-buildup,idle-connections,generation-stalled,backup-stale,redis-memory,collector-failed"
DOCKER_HOST = os.environ.get("TRADEOPS_DOCKER_HOST", "unix:///run/tradeops-docker/docker.sock")
POSTGRES = os.environ.get("TRADEOPS_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


async def main() -> None:
    names = os.environ.get("TRADEOPS_BENCH_SCENARIOS", DEFAULT).split(",")
    profile = os.environ.get("TRADEOPS_BENCH_PROFILE", "mastertrade")
    options = StackOptions(
        run_dir=Path(tempfile.mkdtemp(prefix="tradeops-bench-loop-")),
        ports=StackPorts.free(PROFILES[profile]),
        profile=profile,
        postgres_admin_dsn=POSTGRES,
        database="tradeops_bench_loop",
        docker_host=DOCKER_HOST,
        container_prefix="tradeops-bench-loop_",
    )
    t = options.timings
    print(
        f"floor from a fault to the action: {floor_seconds(t) * 1000:,.0f} ms (scrape {t.scrape_seconds:g} s + "
        f"eval {t.evaluation_seconds:g} s + for {t.alert_for_seconds:g} s + group_wait {t.group_wait_seconds:g} s)"
    )
    header = ["scenario", *STAMPS[1:], "fault->started", "firing->started", "ok"]
    print(" | ".join(header))
    to_action: list[float] = []
    remediator_part: list[float] = []
    async with running_stack(options) as stack, aiohttp.ClientSession() as http:
        for name in names:
            scenario = by_name(name)
            result = await run_scenario(stack, scenario, budget_seconds=150)
            stamps = await component_stamps(stack, scenario.alerts, scenario.signal, result.timeline.since, http)
            ms = stamps.after_injection_ms()
            started, firing, received = ms["started"], ms["firing"], ms["received"]
            cells = [f"{ms[s]:,.0f}" if ms[s] is not None else "-" for s in STAMPS[1:]]
            total = f"{started:,.0f}" if started is not None else "-"
            after_firing = f"{started - firing:,.0f}" if started is not None and firing is not None else "-"
            print(" | ".join([name, *cells, total, after_firing, "yes" if result.ok else f"NO {result.problems}"]))
            if started is not None and received is not None:
                to_action.append(started)
                remediator_part.append(started - received)
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f'DROP DATABASE IF EXISTS "{options.database}" WITH (FORCE)')
    await admin.close()
    if to_action:
        print(
            f"median fault -> action started {statistics.median(to_action):,.0f} ms over {len(to_action)} scenarios "
            f"(floor {floor_seconds(t) * 1000:,.0f} ms); of it in the remediator (received -> started): median "
            f"{statistics.median(remediator_part):,.1f} ms, max {max(remediator_part):,.1f} ms"
        )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
