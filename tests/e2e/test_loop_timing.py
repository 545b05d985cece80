"""The demo's time to remediation, read from the components' own timestamps on a real stack."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from sandbox.loop_timing import STAMPS, component_stamps
from sandbox.scenarios import by_name, run_scenario
from sandbox.stack import running_stack

from tests.e2e.conftest import Servers
from tests.prereqs import require_binary

pytestmark = pytest.mark.e2e


async def test_every_component_leaves_its_stamp_in_the_order_of_the_loop(tmp_path: Path, servers: Servers) -> None:
    for program in ("prometheus", "prometheus-alertmanager", "redis-server"):
        require_binary(program)
    scenario = by_name("generation-stalled")  # an http_request action: no Docker needed
    options = servers.stack_options(tmp_path / "stack", scenario.profile, "tradeops_e2e")
    try:
        async with running_stack(options) as stack:
            result = await run_scenario(stack, scenario, budget_seconds=120)
            assert result.ok, result.problems
            async with aiohttp.ClientSession() as http:
                stamps = await component_stamps(stack, scenario.alerts, scenario.signal, result.timeline.since, http)
    finally:
        await servers.drop_database(options.database)
    seen = [stamps.at[name] for name in STAMPS]
    assert all(stamp is not None for stamp in seen), stamps.at
    ordered = sorted(stamp for stamp in seen if stamp is not None)
    assert ordered == seen, stamps.after_injection_ms()
    ms = stamps.after_injection_ms()
    assert ms["firing"] - ms["active"] >= 0.9 * options.timings.alert_for_seconds * 1000  # type: ignore[operator]
