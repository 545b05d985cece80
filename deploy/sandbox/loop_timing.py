"""The loop's time to remediation read from the components' own timestamps, after a scenario has run.

Prometheus keeps what it saw and did: the sample that first made the fault's signal true (a range query at a
fine step), the alert's `activeAt` (the first `ALERTS{alertstate="pending"}` sample: the evaluation that set
it; `ALERTS_FOR_STATE` holds it in whole seconds only) and the first evaluation that found it firing (the first
`ALERTS{alertstate="firing"}` sample). The remediator's audit keeps when the webhook from
Alertmanager was received, when it was decided, and when the action started and ended. Alertmanager keeps no
timestamp of its sends; on loopback the remediator's "received" is that send."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import aiohttp

from sandbox.stack import Stack, Timings

STAMPS = ("injected", "metric", "active", "firing", "received", "decided", "started", "done")
MAX_POINTS = 10_000  # Prometheus answers at most 11,000 points per series


@dataclass(frozen=True)
class LoopStamps:
    """When each component did its part of one scenario's loop (None: it did not happen, or left no trace)."""

    at: dict[str, dt.datetime | None]
    metric_step_seconds: float  # the resolution of the "metric" stamp

    def after_injection_ms(self) -> dict[str, float | None]:
        """Each stamp in milliseconds after the fault was injected."""
        injected = self.at["injected"]
        assert injected is not None
        return {
            name: (stamp - injected).total_seconds() * 1000 if stamp is not None else None
            for name, stamp in self.at.items()
        }


def floor_seconds(timings: Timings) -> float:
    """The physical floor from a fault to the action: one scrape, one evaluation, the alert's `for:` and
    Alertmanager's `group_wait`, at most."""
    return timings.scrape_seconds + timings.evaluation_seconds + timings.alert_for_seconds + timings.group_wait_seconds


async def component_stamps(
    stack: Stack, alerts: tuple[str, ...], signal: str, injected: dt.datetime, http: aiohttp.ClientSession
) -> LoopStamps:
    """Read the stamps of the loop that began with a fault injected at `injected` (UTC)."""
    prometheus = stack.urls()["prometheus"]
    end = dt.datetime.now(dt.UTC)
    span = (end - injected).total_seconds() + 1
    step = max(0.01, round(span / MAX_POINTS, 3))
    names = "|".join(alerts)
    metric = await _first_true(http, prometheus, signal, injected, end, step)
    active = await _first_sample(
        http, prometheus, f'ALERTS{{alertname=~"{names}",alertstate="pending"}}', injected, span
    )
    firing = await _first_sample(
        http, prometheus, f'ALERTS{{alertname=~"{names}",alertstate="firing"}}', injected, span
    )
    audit = await _audit(stack, alerts, injected, http)
    return LoopStamps(
        {
            "injected": injected,
            "metric": metric,
            "active": _utc(active),
            "firing": _utc(firing),
            "received": audit.get("received"),
            "decided": audit.get("decision"),
            "started": audit.get("action_started"),
            "done": audit.get("action"),
        },
        step,
    )


def _utc(seconds: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(seconds, dt.UTC) if seconds is not None else None


async def _get(http: aiohttp.ClientSession, url: str, **params: str) -> Any:
    async with http.get(url, params=params) as response:
        response.raise_for_status()
        return await response.json()


async def _first_true(
    http: aiohttp.ClientSession, prometheus: str, query: str, start: dt.datetime, end: dt.datetime, step: float
) -> dt.datetime | None:
    """The first evaluation time, at `step` resolution, at which `query` returned data."""
    answer = await _get(
        http,
        f"{prometheus}/api/v1/query_range",
        query=query,
        start=f"{start.timestamp():.3f}",
        end=f"{end.timestamp():.3f}",
        step=f"{step:g}",
    )
    times = [float(at) for series in answer["data"]["result"] for at, _ in series["values"]]
    return _utc(min(times)) if times else None


async def _first_sample(
    http: aiohttp.ClientSession, prometheus: str, selector: str, since: dt.datetime, span: float
) -> float | None:
    """The timestamp of a selector's first raw sample since `since` (an evaluation's own time, in ms)."""
    answer = await _get(http, f"{prometheus}/api/v1/query", query=f"{selector}[{int(span) + 1}s]")
    times = [float(at) for series in answer["data"]["result"] for at, _ in series["values"]]
    return min((at for at in times if at >= since.timestamp()), default=None)


async def _audit(
    stack: Stack, alerts: tuple[str, ...], injected: dt.datetime, http: aiohttp.ClientSession
) -> dict[str, dt.datetime]:
    """The first audit entry of each event for the scenario's alerts since the injection (firing ones only)."""
    async with http.get(
        f"{stack.urls()['remediator']}/api/v1/remediations",
        params={"limit": "500"},
        headers={"Authorization": f"Bearer {stack.token}"},
    ) as response:
        response.raise_for_status()
        entries = (await response.json())["remediations"]
    first: dict[str, dt.datetime] = {}
    for entry in reversed(entries):  # oldest first
        at = dt.datetime.fromisoformat(entry["at"])
        if entry["labels"].get("alertname") in alerts and at >= injected and entry.get("status") != "resolved":
            first.setdefault(entry["event"], at)
    return first


def breakdown(stamps: LoopStamps, timings: Timings) -> str:
    """One line: each component's stamp in ms after the fault, the intervals between them, and the floor."""
    ms = stamps.after_injection_ms()
    parts = [f"{name} {value:,.0f}" for name, value in ms.items() if name != "injected" and value is not None]
    gaps = []
    for earlier, later, label in (
        ("firing", "received", "firing->received"),
        ("received", "decided", "received->decided"),
        ("decided", "started", "decided->started"),
    ):
        if ms.get(earlier) is not None and ms.get(later) is not None:
            gaps.append(f"{label} {ms[later] - ms[earlier]:,.1f}")  # type: ignore[operator]
    return (
        "ms after the fault: "
        + " | ".join(parts)
        + (f"  [{', '.join(gaps)} ms]" if gaps else "")
        + f"  (floor to the action {floor_seconds(timings) * 1000:,.0f} ms: scrape {timings.scrape_seconds:g}s"
        f" + eval {timings.evaluation_seconds:g}s + for {timings.alert_for_seconds:g}s"
        f" + group_wait {timings.group_wait_seconds:g}s; metric stamp to {stamps.metric_step_seconds * 1000:g} ms)"
    )
