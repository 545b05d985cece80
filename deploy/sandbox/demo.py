"""`make demo`: the whole loop on one machine, with a scripted tour of faults shown live in the terminal.

make demo                                        # start everything, run the tour, keep running until Ctrl-C
make demo ARGS="--scenario NAME --exit-when-done" # one scenario; exit 0 only if it ended as expected
make demo ARGS="--scenario all --exit-when-done"  # every scenario in turn
make demo ARGS="--list"                           # name the scenarios
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import docker
import docker.errors

from sandbox.loop_timing import breakdown, component_stamps
from sandbox.profiles import PROFILES
from sandbox.scenarios import ALL_SCENARIOS, ScenarioResult, by_name, run_scenario
from sandbox.stack import MissingPrerequisiteError, Stack, StackOptions, StackPorts

DOCKER_HOST = os.environ.get("TRADEOPS_DOCKER_HOST", "unix:///run/tradeops-docker/docker.sock")


def docker_available(host: str) -> bool:
    """Return whether a Docker engine with the sandbox image answers at host."""
    try:
        client = docker.DockerClient(base_url=host, timeout=5, version="1.41")
        client.ping()
        client.images.get("tradeops/busybox:latest")
        client.close()
    except (docker.errors.DockerException, OSError):
        return False
    return True


def say(text: str) -> None:
    """Print one line of the demo's narration at once."""
    print(text, flush=True)


async def tour(stack: Stack, names: list[str], has_docker: bool) -> list[ScenarioResult]:
    """Run scenarios one after another, narrating each step."""
    results = []
    for index, name in enumerate(names, 1):
        scenario = by_name(name)
        if scenario.needs_docker and not has_docker:
            say(f"[{index}/{len(names)}] {name}: skipped (needs a Docker engine at {DOCKER_HOST}: run `make prereqs`)")
            continue
        say(f"[{index}/{len(names)}] {name}: {scenario.description}")
        result = await run_scenario(stack, scenario, say)
        verdict = "OK" if result.ok else "FAILED: " + "; ".join(result.problems)
        say(f"  => {verdict}")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            stamps = await component_stamps(stack, scenario.alerts, scenario.signal, result.timeline.since, http)
        say(f"     {breakdown(stamps, stack.options.timings)}")
        results.append(result)
    return results


async def run(args: argparse.Namespace) -> int:
    """Start the stack, run the chosen scenarios, and either exit or keep running until Ctrl-C."""
    has_docker = docker_available(DOCKER_HOST)
    run_dir = Path(tempfile.mkdtemp(prefix="tradeops-demo-"))
    profile = PROFILES[args.profile]
    ports = StackPorts.free(profile) if args.free_ports else StackPorts.standard(profile)
    options = StackOptions(
        run_dir=run_dir, ports=ports, profile=profile.name, docker_host=DOCKER_HOST if has_docker else None
    )
    stack = Stack(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    say(f"tradeops demo: starting the stack (configs and logs in {run_dir})")
    try:
        await stack.start()
    except MissingPrerequisiteError as error:
        say(f"missing prerequisite: {error} (or run `make prereqs`)")
        return 1
    try:
        for name, url in stack.urls().items():
            say(f"  {name:<13} {url}")
        mine = [s.name for s in ALL_SCENARIOS if s.profile == args.profile]
        names = mine if args.scenario in (None, "all") else [args.scenario]
        work = asyncio.create_task(tour(stack, names, has_docker))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if work not in done:
            work.cancel()
            say("stopping")
            return 130
        stopper.cancel()
        results = work.result()
        failed = [r for r in results if not r.ok]
        say(f"{len(results) - len(failed)} passed, {len(failed)} failed")
        if args.exit_when_done:
            return 1 if failed else 0
        say("The stack keeps running; inject faults yourself with the chaos API. Ctrl-C stops everything.")
        await stop.wait()
        return 0
    finally:
        await stack.stop()
        say("stopped: nothing left running")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `make demo`."""
    parser = argparse.ArgumentParser(
        prog="make demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", help="a scenario name, or all (default: the whole tour)")
    parser.add_argument(
        "--exit-when-done", action="store_true", help="exit 0 when every scenario ended as expected, else 1"
    )
    parser.add_argument("--list", action="store_true", help="name the scenarios and exit")
    parser.add_argument("--free-ports", action="store_true", help="use free ports instead of the standard ones")
    parser.add_argument(
        "--profile", default="mastertrade", choices=sorted(PROFILES), help="the simulated system (default mastertrade)"
    )
    args = parser.parse_args(argv)
    if args.list:
        for scenario in ALL_SCENARIOS:
            say(f"{scenario.name:<20} [{scenario.profile}] {scenario.description}")
        return 0
    if args.scenario not in (None, "all"):
        try:
            chosen = by_name(args.scenario)
        except KeyError as error:
            say(str(error.args[0]))
            return 2
        if chosen.profile != args.profile:
            say(f"{chosen.name} belongs to profile {chosen.profile}: add --profile {chosen.profile}")
            return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
