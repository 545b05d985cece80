"""Scripted faults for the demo and the e2e tests: each injects a real fault and watches the loop close."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import yaml

from sandbox.stack import Stack

Outcome = Literal["resolved", "escalated"]
STEPS = ("injected", "metric", "pending", "firing", "webhook", "decision", "action", "escalated", "resolved")


@dataclass(frozen=True)
class Scenario:
    """One fault and what the product must do about it."""

    name: str
    description: str
    faults: tuple[tuple[str, dict[str, Any]], ...]
    alerts: tuple[str, ...]
    signal: str  # PromQL that returns data once the fault is visible in the exporter's metrics
    rule: str | None
    decision: str
    outcome: Outcome
    needs_docker: bool = False
    min_actions: int = 1
    max_actions: int = 1
    setup: Callable[[Stack], Awaitable[None]] | None = None
    teardown: Callable[[Stack], Awaitable[None]] | None = None
    during: Callable[[Stack, Timeline], Awaitable[None]] | None = None
    during_step: str = "action"
    profile: str = "mastertrade"
    steps: tuple[tuple[str, str], ...] = ()  # (step, audit decision) the playbook must record, e.g. verified
    absent_steps: tuple[str, ...] = ()  # steps that must never run (no action and no step event names them)
    escalation: str | None = None  # the reason the page must carry, when the scenario escalates
    page_has: tuple[str, ...] = ()  # what that page's detail must carry (evidence, step outcomes)
    # A human's answer to the first approval page, through POST /api/v1/approvals/{id} with the token; None lets
    # the approval expire.
    approval: Literal["approve", "deny"] | None = None
    # A verification window shorter than the stack's, for a scenario whose every verification must fail: nothing
    # physical is awaited, so its own e2e stack need not wait the whole window (the demo's shared stack ignores it).
    verify_within_seconds: float | None = None


@dataclass
class Timeline:
    """When each step of the loop was first seen, in seconds after the fault was injected."""

    started: float = field(default_factory=time.monotonic)
    since: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    seen: dict[str, float] = field(default_factory=dict)
    decisions: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)  # (step name, decision) of step/approval events
    details: list[str] = field(default_factory=list)  # every audit entry's detail, for what the steps named
    pages: list[tuple[str, str]] = field(default_factory=list)  # (reason, detail) of each escalation
    delivered: list[str] = field(default_factory=list)  # reasons of the RemediationEscalated alerts in Alertmanager
    answered: str | None = None  # how the approval API answered the scenario's decision

    def mark(self, step: str) -> bool:
        """Record a step the first time it is seen; return whether it is new."""
        if step in self.seen:
            return False
        self.seen[step] = time.monotonic() - self.started
        return True


@dataclass
class ScenarioResult:
    """How a scenario ended."""

    scenario: Scenario
    timeline: Timeline
    problems: list[str]

    @property
    def ok(self) -> bool:
        """Whether everything went as the scenario expects."""
        return not self.problems


async def _json(http: aiohttp.ClientSession, url: str, **params: str) -> Any:
    async with http.get(url, params=params) as response:
        return await response.json()


async def observe(stack: Stack, scenario: Scenario, timeline: Timeline, http: aiohttp.ClientSession) -> list[str]:
    """Poll Prometheus, the remediator's audit and the sandbox once; mark new steps; return their names."""
    urls = stack.urls()
    new: list[str] = []
    query = await _json(http, f"{urls['prometheus']}/api/v1/query", query=scenario.signal)
    if query.get("data", {}).get("result") and timeline.mark("metric"):
        new.append("metric")
    alerts = (await _json(http, f"{urls['prometheus']}/api/v1/alerts"))["data"]["alerts"]
    states = {a["state"] for a in alerts if a["labels"].get("alertname") in scenario.alerts}
    for state in ("pending", "firing"):
        if (state in states or (state == "pending" and "firing" in states)) and timeline.mark(state):
            new.append(state)
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with http.get(
        f"{urls['remediator']}/api/v1/remediations", params={"limit": "500"}, headers=headers
    ) as response:
        entries = (await response.json())["remediations"]
    mine = [
        e
        for e in reversed(entries)
        if e["labels"].get("alertname") in scenario.alerts and dt.datetime.fromisoformat(e["at"]) >= timeline.since
    ]
    timeline.decisions = [e["decision"] for e in mine if e["event"] == "decision" and e["status"] == "firing"]
    timeline.actions = [e["decision"] for e in mine if e["event"] == "action"]
    timeline.escalations = [e["decision"] for e in mine if e["event"] == "escalated"]
    timeline.steps = [
        (str(e.get("detail", "")).partition(":")[0], e["decision"]) for e in mine if e["event"] in {"step", "approval"}
    ]
    timeline.details = [str(e.get("detail", "")) for e in mine]
    timeline.pages = [(e["decision"], str(e.get("detail", ""))) for e in mine if e["event"] == "escalated"]
    if timeline.pages:
        pages = await _json(http, f"{urls['alertmanager']}/api/v2/alerts", filter='alertname="RemediationEscalated"')
        # Kept once seen: a page the remediator resolves soon after (an approval answered, the alert gone) leaves
        # Alertmanager's list of active alerts, and it still reached Alertmanager.
        seen = [
            a["labels"].get("escalation_reason", "")
            for a in pages
            if a["labels"].get("original_alertname") in scenario.alerts
            and dt.datetime.fromisoformat(a["startsAt"]) >= timeline.since
        ]
        timeline.delivered += [reason for reason in seen if reason not in timeline.delivered]
    for step, present in (
        ("webhook", bool(mine)),
        ("decision", bool(timeline.decisions)),
        ("action", bool(timeline.actions)),
        ("escalated", bool(timeline.escalations)),
    ):
        if present and timeline.mark(step):
            new.append(step)
    # Each playbook step's outcome and each page, as they come (the demo shows every step live).
    for event in [f"step {name}: {decision}" for name, decision in timeline.steps] + [
        f"page: {reason}" for reason in timeline.escalations
    ]:
        if timeline.mark(event):
            new.append(event)
    if "firing" in timeline.seen and not states:
        chaos = await _json(http, urls["chaos"])
        if not chaos["active"] and timeline.mark("resolved"):
            new.append("resolved")
    return new


async def run_scenario(
    stack: Stack, scenario: Scenario, report: Callable[[str], None] = lambda _: None, budget_seconds: float = 120
) -> ScenarioResult:
    """Inject the scenario's faults, follow the loop until it ends (bounded), clear what is left, judge it."""
    timeline = Timeline()
    problems: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        await _wait_until_quiet(stack, scenario, http)
        if scenario.setup is not None:
            await scenario.setup(stack)
        timeline = Timeline()
        for fault, body in scenario.faults:
            async with http.post(f"{stack.urls()['chaos']}/{fault}", json=body) as response:
                if response.status != 201:
                    problems.append(f"injecting {fault} failed: {response.status} {await response.text()}")
        timeline.mark("injected")
        report(f"  {0:6.1f}s injected {', '.join(f for f, _ in scenario.faults)}")
        deadline = time.monotonic() + budget_seconds
        during_done = False
        while not problems and time.monotonic() < deadline:
            for step in await observe(stack, scenario, timeline, http):
                report(f"  {timeline.seen[step]:6.1f}s {_describe(step, timeline)}")
            # The human answers once paged: after the approval page reached Alertmanager.
            if scenario.approval is not None and timeline.answered is None and "approval_needed" in timeline.delivered:
                await _answer_approval(stack, scenario.approval, timeline, http, report)
            if scenario.during is not None and not during_done and scenario.during_step in timeline.seen:
                during_done = True
                report(f"  {time.monotonic() - timeline.started:6.1f}s {scenario.during.__doc__ or 'intervention'}")
                await scenario.during(stack, timeline)
            if scenario.outcome in timeline.seen and _complete(scenario, timeline):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # anything that would wrongly come after the end (a second action) shows up
        await observe(stack, scenario, timeline, http)
        diagnosis = await _diagnose(stack, http)
        async with http.delete(stack.urls()["chaos"]):
            pass
        if scenario.teardown is not None:
            await scenario.teardown(stack)
    problems += _judge(scenario, timeline)
    if problems and diagnosis:
        problems.append("diagnosis: " + diagnosis)
    return ScenarioResult(scenario, timeline, problems)


ANSWERS = {"approve": "approved", "deny": "denied"}  # the approval API's result for each decision
APPROVAL_ID = re.compile(r"(?:approvals/|approval id )([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")


async def _answer_approval(
    stack: Stack, decision: str, timeline: Timeline, http: aiohttp.ClientSession, report: Callable[[str], None]
) -> None:
    """Once the approval page is out, answer it as the on-call engineer would: the id from the page, the
    decision through the authenticated approval API."""
    found = next((APPROVAL_ID.search(d) for r, d in timeline.pages if r == "approval_needed"), None)
    if found is None:
        return
    url = f"{stack.urls()['remediator']}/api/v1/approvals/{found.group(1)}"
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with http.post(url, json={"decision": decision, "user": "e2e-on-call"}, headers=headers) as response:
        timeline.answered = f"{response.status} {(await response.json()).get('result')}"
    report(f"  {time.monotonic() - timeline.started:6.1f}s {decision}: {timeline.answered}")


async def _diagnose(stack: Stack, http: aiohttp.ClientSession) -> str:
    """What Prometheus knows that explains a stuck loop: failed scrapes, failing probes, firing alerts."""
    prometheus = stack.urls()["prometheus"]
    found = []
    for label, query in (
        ("scrapes failed in the last 5m", "sum by (job, instance) (count_over_time((up == 0)[5m:1s])) > 0"),
        ("probe failures", "sum by (probe, target, reason) (tradeops_probe_failures_total) > 0"),
        ("alerts", 'ALERTS{alertstate="firing"}'),
    ):
        result = (await _json(http, f"{prometheus}/api/v1/query", query=query)).get("data", {}).get("result", [])
        if result:
            found.append(f"{label}: " + ", ".join(f"{r['metric']}={r['value'][1]}" for r in result[:10]))
    return "; ".join(found)


async def _wait_until_quiet(stack: Stack, scenario: Scenario, http: aiohttp.ClientSession, seconds: float = 60) -> None:
    """Wait (bounded) until no alert of the scenario is pending or firing, so a scenario never joins the
    previous one's incident."""
    for _ in range(int(seconds * 2)):
        alerts = (await _json(http, f"{stack.urls()['prometheus']}/api/v1/alerts"))["data"]["alerts"]
        if not any(a["labels"].get("alertname") in scenario.alerts for a in alerts):
            return
        await asyncio.sleep(0.5)


def _describe(step: str, timeline: Timeline) -> str:
    detail = {
        "metric": "metric changed",
        "pending": "alert pending",
        "firing": "alert firing",
        "webhook": "webhook received",
        "decision": f"decision: {timeline.decisions[0] if timeline.decisions else '?'}",
        "action": f"action: {timeline.actions[0] if timeline.actions else '?'}",
        "escalated": f"escalated: {timeline.escalations[0] if timeline.escalations else '?'}",
        "resolved": "resolved: alert gone, fault cleared on the real component",
    }
    return detail.get(step, step)


def _complete(scenario: Scenario, timeline: Timeline) -> bool:
    """Whether everything the scenario waits for was seen: its actions, its steps, its page."""
    return (
        len(timeline.actions) >= scenario.min_actions
        and all(step in timeline.steps for step in scenario.steps)
        and (scenario.escalation is None or scenario.escalation in timeline.delivered)
        and (scenario.approval is None or timeline.answered is not None)
    )


def _judge(scenario: Scenario, timeline: Timeline) -> list[str]:
    problems = []
    if scenario.outcome not in timeline.seen:
        missing = [s for s in STEPS if s not in timeline.seen and s not in {"escalated", "resolved", "action"}]
        problems.append(f"never {scenario.outcome} (not seen: {', '.join(missing) or 'nothing missing'})")
    if scenario.decision not in timeline.decisions:
        problems.append(f"decision {scenario.decision!r} never taken (took {timeline.decisions})")
    successes = timeline.actions.count("success")
    count = len(timeline.actions)
    if not scenario.min_actions <= count <= scenario.max_actions:
        problems.append(f"{count} action(s) ran, expected {scenario.min_actions} to {scenario.max_actions}")
    if scenario.outcome == "resolved" and scenario.min_actions and successes == 0:
        problems.append("no action succeeded")
    for step in scenario.steps:
        if step not in timeline.steps:
            problems.append(f"step {step[0]} never {step[1]} (steps: {timeline.steps})")
    for name in scenario.absent_steps:
        if any(seen == name for seen, _ in timeline.steps) or any(f"step {name}" in d for d in timeline.details):
            problems.append(f"step {name} must not run (steps: {timeline.steps})")
    if scenario.escalation is not None and scenario.escalation not in timeline.escalations:
        problems.append(f"no {scenario.escalation!r} escalation (escalated: {timeline.escalations})")
    return problems + _judge_pages(scenario, timeline)


def _judge_pages(scenario: Scenario, timeline: Timeline) -> list[str]:
    """The page reached Alertmanager and carries what the scenario expects; the approval was answered as asked."""
    problems = []
    if scenario.escalation is not None and scenario.escalation not in timeline.delivered:
        problems.append(f"no {scenario.escalation!r} page in Alertmanager (there: {timeline.delivered})")
    page = next((detail for reason, detail in timeline.pages if reason == scenario.escalation), "")
    for text in scenario.page_has:
        if text not in page:
            problems.append(f"the {scenario.escalation} page does not carry {text!r}: {page[:1500]!r}")
    if scenario.approval is not None and timeline.answered != f"200 {ANSWERS[scenario.approval]}":
        problems.append(f"the approval was not {ANSWERS[scenario.approval]} (the API answered {timeline.answered})")
    return problems


async def _maintenance_on(stack: Stack) -> None:
    await _reload_remediator(stack, {"maintenance_windows": [{"name": "demo", "time_intervals": [{}]}]})


async def _maintenance_off(stack: Stack) -> None:
    await _reload_remediator(stack, {"maintenance_windows": []})


async def _reload_remediator(stack: Stack, overrides: dict[str, Any]) -> None:
    path = stack.options.run_dir / "remediator.yml"
    config = yaml.safe_load(path.read_text())
    config.update(overrides)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    url, headers = f"{stack.urls()['remediator']}/-/reload", {"Authorization": f"Bearer {stack.token}"}
    async with aiohttp.ClientSession() as http, http.post(url, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"remediator reload failed: {await response.text()}")


async def _restart_remediator(stack: Stack, timeline: Timeline) -> None:
    """remediator killed (SIGKILL) and restarted on its own state"""
    await stack.restart_remediator()


async def _signals_queue_seen_below_critical(stack: Stack) -> None:
    """Wait (bounded) until Prometheus holds a sample of the signals queue below the critical depth, so the
    backlog the fault piles up is younger than the purge's 10 minutes."""
    query = 'tradeops_queue_messages_ready{queue="strategy_service.signals"} < 10000'
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for _ in range(120):
            found = await _json(http, f"{stack.urls()['prometheus']}/api/v1/query", query=query)
            if found.get("data", {}).get("result"):
                return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"Prometheus never saw {query}: the exporter does not report the queue")


# The window of a scenario whose verifications must all fail: 5 polls (Timings.verify_every_seconds).
NOT_VERIFIED_WINDOW_SECONDS = 10.0
QUEUE_SIGNAL = "tradeops_queue_messages_ready > 10000"
ORDERS_SIGNAL = 'tradeops_queue_messages_ready{queue="risk_manager.orders"} > 10000'
# The order queue's consumer (mastertrade_risk_manager) is a container the sandbox does not link to its service:
# restarting it revives nothing, so the restart step is not verified and the ladder reaches the purge.
ORDER_QUEUE_BUILDUP = (("queue_buildup", {"queue": "risk_manager.orders", "messages": 12000}),)
ORDER_LADDER = (("restart-consumer", "not_verified"), ("purge-old-messages", "approval_pending"))


def _order_queue(name: str, description: str, **expected: Any) -> Scenario:
    """A scenario of the order queue's ladder: the restart does not help, the purge waits for a human."""
    shared: dict[str, Any] = {
        "faults": ORDER_QUEUE_BUILDUP,
        "alerts": ("QueueDepthCritical",),
        "signal": ORDERS_SIGNAL,
        "rule": "restart-order-consumer",
        "decision": "executed",
        "outcome": "escalated",
        "needs_docker": True,
    }
    return Scenario(name=name, description=description, **(shared | expected))


STALLED_SIGNAL = "time() - tradeops_strategy_last_generation_timestamp_seconds > 97200"
COLLECTOR_ALERTS = ("CollectorFailed", "CollectorCircuitBreakerOpen")  # one fault raises both; one action serves
# After 06:00 UTC a stalled generation also misses the daily target: both alerts, one generation run.
GENERATION_ALERTS = ("StrategyGenerationStalled", "StrategyGenerationBelowTarget")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="service-down",
        description="the strategy service's container stops -> restarted",
        faults=(("service_down", {"service": "strategy"}),),
        alerts=("CriticalServiceDown",),
        signal='tradeops_service_up{service="strategy"} == 0',
        rule="restart-critical-service",
        decision="executed",
        outcome="resolved",
        needs_docker=True,
    ),
    Scenario(
        name="queue-buildup",
        description="the signals consumer hangs, 12,000 messages pile up -> consumer restarted, the queue drains",
        faults=(("queue_buildup", {"queue": "strategy_service.signals", "messages": 12000}),),
        alerts=("QueueDepthCritical",),
        signal=QUEUE_SIGNAL,
        rule="purge-stale-queue",
        decision="executed",
        outcome="resolved",
        needs_docker=True,
        absent_steps=("purge-old-messages",),
    ),
    Scenario(
        name="idle-connections",
        description="a leaking pool holds 45 idle PostgreSQL sessions -> terminated",
        faults=(("pg_idle_connections", {"count": 45}),),
        alerts=("PostgresConnectionPoolExhausted",),
        signal="server:tradeops_postgres_connections:ratio >= 0.4",
        rule="terminate-idle-connections",
        decision="executed",
        outcome="resolved",
    ),
    Scenario(
        name="generation-stalled",
        description="no strategy generated for 30 hours -> generation triggered",
        faults=(("generation_stalled", {}),),
        alerts=GENERATION_ALERTS,
        signal=STALLED_SIGNAL,
        rule="trigger-generation",
        decision="executed",
        outcome="resolved",
    ),
    Scenario(
        name="backup-stale",
        description="last night's PostgreSQL backup is missing (newest is 2 days old) -> backup run",
        faults=(("backup_stale", {"set": "postgres_daily"}),),
        alerts=("BackupStale",),
        signal='time() - tradeops_backup_newest_timestamp_seconds{set="postgres_daily"} > 86400',
        rule="run-backup",
        decision="executed",
        outcome="resolved",
    ),
    Scenario(
        name="redis-memory",
        description="cache keys fill Redis to 95% of maxmemory -> keys removed by pattern",
        faults=(("redis_fill", {"value_bytes": 65536}),),
        alerts=("RedisMemoryHigh",),
        signal="tradeops_redis_memory_used_bytes / (tradeops_redis_memory_max_bytes > 0) > 0.9",
        rule="evict-cache-keys",
        decision="executed",
        outcome="resolved",
    ),
    Scenario(
        name="collector-failed",
        description="the binance collector fails, circuit breaker open -> breaker reset (once for both alerts)",
        faults=(("collector_failed", {"collector": "binance"}),),
        alerts=COLLECTOR_ALERTS,
        signal='tradeops_collector_status{collector="binance",status="failed"} == 1',
        rule="reset-collector",
        decision="executed",
        outcome="resolved",
    ),
    Scenario(
        name="not-allowed",
        description="a collector outside the allowlist fails -> escalated through Alertmanager, no action",
        faults=(("collector_failed", {"collector": "collector_009"}),),
        alerts=COLLECTOR_ALERTS,
        signal='tradeops_collector_status{collector="collector_009",status="failed"} == 1',
        rule="reset-collector",
        decision="not_allowed",
        outcome="escalated",
        min_actions=0,
        max_actions=0,
    ),
    Scenario(
        name="maintenance",
        description="generation stalls inside a maintenance window -> escalated, no action",
        faults=(("generation_stalled", {}),),
        alerts=GENERATION_ALERTS,
        signal=STALLED_SIGNAL,
        rule="trigger-generation",
        decision="maintenance",
        outcome="escalated",
        min_actions=0,
        max_actions=0,
        setup=_maintenance_on,
        teardown=_maintenance_off,
    ),
    Scenario(
        name="not-fixed",
        description="a service stays down although its container restarts -> retried once, then escalated",
        faults=(("service_down", {"service": "risk_manager"}),),
        alerts=("CriticalServiceDown",),
        signal='tradeops_service_up{service="risk_manager"} == 0',
        rule="restart-critical-service",
        decision="executed",
        escalation="playbook_exhausted",
        page_has=("why-down: diagnosed - 1 of 1 probes answered", "evidence: container-logs: "),
        outcome="escalated",
        needs_docker=True,
        min_actions=2,
        max_actions=2,
        verify_within_seconds=NOT_VERIFIED_WINDOW_SECONDS,
    ),
    Scenario(
        name="remediator-restart",
        description="the remediator is killed mid-incident and restarted -> still exactly two attempts, then escalated",
        faults=(("service_down", {"service": "risk_manager"}),),
        alerts=("CriticalServiceDown",),
        signal='tradeops_service_up{service="risk_manager"} == 0',
        rule="restart-critical-service",
        decision="executed",
        escalation="playbook_exhausted",
        outcome="escalated",
        needs_docker=True,
        min_actions=2,
        max_actions=2,
        during=_restart_remediator,
        during_step="action",
        verify_within_seconds=NOT_VERIFIED_WINDOW_SECONDS,
    ),
    # The playbooks' ladders (issue 20): a step that does not help, a step a human approves, denies or lets expire,
    # a step whose precondition does not hold, and pages that carry what was tried and seen.
    Scenario(
        name="queue-poisoned",
        description="a poison message hangs the signals consumer again after its restart; the backlog is too young"
        " to purge -> purge skipped, a human paged with the queue's state",
        faults=(
            ("queue_buildup", {"queue": "strategy_service.signals", "messages": 12000, "consumer_revives": False}),
        ),
        alerts=("QueueDepthCritical",),
        signal=QUEUE_SIGNAL,
        rule="purge-stale-queue",
        decision="executed",
        escalation="playbook_exhausted",
        page_has=(
            "restart-consumer: not_verified",
            "purge-old-messages: skipped - precondition not met",
            "evidence: queue-state: queue strategy_service.signals (vhost /): ",
        ),
        outcome="escalated",
        needs_docker=True,
        steps=(("restart-consumer", "not_verified"), ("purge-old-messages", "skipped")),
        setup=_signals_queue_seen_below_critical,
        verify_within_seconds=NOT_VERIFIED_WINDOW_SECONDS,
    ),
    _order_queue(
        "order-queue-approved",
        "the order consumer hangs and its restart does not drain risk_manager.orders -> the on-call engineer approves"
        " the purge, the queue drains, resolved",
        outcome="resolved",
        min_actions=2,
        max_actions=2,
        steps=(
            *ORDER_LADDER,
            ("purge-old-messages", "approved"),
            ("purge-old-messages", "when_holds"),  # then purged; verified or resolved first, whichever comes
        ),
        approval="approve",
    ),
    _order_queue(
        "order-queue-denied",
        "the restart does not drain risk_manager.orders -> the on-call engineer denies the purge: nothing purged,"
        " paged approval_denied",
        escalation="approval_denied",
        page_has=("purge-old-messages: denied - by token:e2e-on-call",),
        steps=(*ORDER_LADDER, ("purge-old-messages", "denied")),
        approval="deny",
        verify_within_seconds=NOT_VERIFIED_WINDOW_SECONDS,
    ),
    _order_queue(
        "order-queue-expired",
        "the restart does not drain risk_manager.orders -> nobody answers the approval page: nothing purged, paged"
        " approval_expired",
        escalation="approval_expired",
        page_has=("purge-old-messages: approval_expired - nobody approved in time",),
        steps=(*ORDER_LADDER, ("purge-old-messages", "expired")),
        verify_within_seconds=NOT_VERIFIED_WINDOW_SECONDS,
    ),
)

TWO_FAULTS = Scenario(
    name="two-faults",
    description="a queue builds up while generation stalls -> consumer restarted and generation run",
    faults=(
        ("queue_buildup", {"queue": "strategy_service.signals", "messages": 12000}),
        ("generation_stalled", {}),
    ),
    alerts=("QueueDepthCritical", *GENERATION_ALERTS),
    signal=QUEUE_SIGNAL,
    rule="purge-stale-queue",
    decision="executed",
    outcome="resolved",
    needs_docker=True,
    min_actions=2,
    max_actions=2,
)
# TradeMaster (seed 003): the playbooks the Spring sandbox simulates.
TRADEMASTER_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="tm-circuit-breaker",
        description="TradeMaster's broker circuit breaker opens -> waited for, it half-opens by itself (never forced)",
        faults=(("circuit_breaker_open", {"name": "brokerService", "half_open_after_seconds": 15}),),
        alerts=("CircuitBreakerOpen",),
        signal='resilience4j_circuitbreaker_state{name="brokerService",state="open"} == 1',
        rule="await-circuit-breaker-recovery",
        decision="executed",
        outcome="resolved",
        profile="trademaster",
    ),
    Scenario(
        name="tm-breaker-forced",
        description="the broker breaker stays open past the wait for HALF_OPEN -> a human approves forcing it closed;"
        " closed, resolved",
        faults=(("circuit_breaker_open", {"name": "brokerService"}),),
        alerts=("CircuitBreakerOpen",),
        signal='resilience4j_circuitbreaker_state{name="brokerService",state="open"} == 1',
        rule="await-circuit-breaker-recovery",
        decision="executed",
        outcome="resolved",
        min_actions=2,  # the wait (log) and the approved force
        max_actions=2,
        steps=(
            ("wait-for-half-open", "not_verified"),
            ("force-closed", "approval_pending"),
            ("force-closed", "approved"),
            ("force-closed", "when_holds"),  # then forced; verified or resolved first, whichever comes
        ),
        approval="approve",
        profile="trademaster",
    ),
    Scenario(
        name="tm-pool-exhausted",
        description="10 queries hang and fill TradeMaster's Hikari pool -> long queries cancelled; slow ones paged",
        faults=(("pg_long_queries", {"count": 10}),),
        alerts=("DatabaseConnectionPoolExhaustion", "SlowDatabaseQueries"),
        signal="hikaricp_connections_active >= 10",
        rule="cancel-long-queries",
        decision="executed",
        outcome="resolved",
        max_actions=1,  # the cancel; the slow queries are paged with their sessions, which is no action
        profile="trademaster",
    ),
    Scenario(
        name="tm-application-down",
        description="TradeMaster's container stops -> restarted",
        faults=(("service_down", {"service": "trading_service"}),),
        alerts=("ApplicationDown",),
        signal='tradeops_service_up{service="trading_service"} == 0',
        rule="restart-application",
        decision="executed",
        outcome="resolved",
        needs_docker=True,
        profile="trademaster",
    ),
)
# AI Trading System v1.1 (seed 004): the glossary entries the PM2 sandbox simulates.
V11_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="v11-rate-gate",
        description="the rate gate backs off every second -> reset through its API",
        faults=(("rate_gate_exhausted", {}),),
        alerts=("RateGateBackoffHigh",),
        signal="increase(rate_gate_backoff_count[1m]) > 10",
        rule="reset-rate-gate",
        decision="executed",
        outcome="resolved",
        # The trigger counts backoffs over 1 minute, so the alert outlives the fix by up to a minute; a retry
        # then finds the gate no longer blocking and skips its reset (the `when`), within the rule's 2 attempts.
        max_actions=2,
        profile="ai-trading-v1.1",
    ),
    Scenario(
        name="v11-losing-strategy",
        description="negative Sharpe with 8% drawdown -> a human is asked, with the performance, to approve"
        " disabling auto-trading; approved, it is disabled",
        faults=(("losing_strategy", {}),),
        alerts=("NegativeSharpeWithDrawdown",),
        signal="trading_sharpe_ratio < 0",
        rule="escalate-losing-strategy",
        decision="executed",
        escalation="approval_needed",
        page_has=("disable-auto-trading (http_request) waits for approval", "check-performance: diagnosed - 2 of 2"),
        outcome="escalated",
        steps=(
            ("disable-auto-trading", "approval_pending"),
            ("disable-auto-trading", "approved"),
            ("disable-auto-trading", "when_holds"),
        ),
        approval="approve",
        profile="ai-trading-v1.1",
    ),
    Scenario(
        name="v11-backup-failed",
        description="the PostgreSQL backup script's last run exited 1 -> run again",
        faults=(("backup_script_failed", {"set": "postgres"}),),
        alerts=("BackupScriptFailed",),
        signal='tradeops_command_exit_code{command="backup_postgres"} != 0',
        rule="rerun-backup",
        decision="executed",
        outcome="resolved",
        profile="ai-trading-v1.1",
    ),
    Scenario(
        name="v11-connections-at-max",
        description="a leaking worker holds 45 idle PostgreSQL sessions -> its idle sessions terminated",
        faults=(("pg_idle_connections", {"count": 45, "application_name": "ai-trading-worker"}),),
        alerts=("DatabaseConnectionsAtMax",),
        signal="sum by (server) (tradeops_postgres_connections) / on (server) tradeops_postgres_max_connections >= 0.4",
        rule="terminate-idle-sessions",
        decision="executed",
        outcome="resolved",
        profile="ai-trading-v1.1",
    ),
    Scenario(
        name="v11-pm2-crash-loop",
        description="a PM2 process crash-loops -> that one process restarted; restarts persist -> escalated",
        faults=(("pm2_crash_loop", {"process": "trading-engine"}),),
        alerts=("Pm2HighRestartRate",),
        signal='increase(tradeops_command_value{command="pm2_jlist",field="restart_time"}[1m]) > 3',
        rule="restart-pm2-process",
        decision="executed",
        outcome="escalated",
        steps=(("restart-process", "not_verified"),),
        page_has=("evidence: pm2-restarts: ",),
        escalation="playbook_exhausted",  # the restart ran; its verification saw the loop go on
        profile="ai-trading-v1.1",
        verify_within_seconds=NOT_VERIFIED_WINDOW_SECONDS,
    ),
    Scenario(
        name="v11-pm2-memory-leak",
        description="a PM2 process leaks past 30% of the host's memory -> that one process restarted, its memory"
        " verified to fall",
        faults=(("pm2_memory_leak", {"process": "market-data-worker"}),),
        alerts=("Pm2ProcessMemoryHigh",),
        signal='tradeops_command_value{command="pm2_jlist",field="memory",item="market-data-worker"}'
        " / scalar(max(node_memory_MemTotal_bytes)) > 0.3",
        rule="restart-memory-heavy-process",
        decision="executed",
        outcome="resolved",
        steps=(("restart-process", "when_holds"),),  # then restarted; verified or resolved first, whichever comes
        profile="ai-trading-v1.1",
    ),
    Scenario(
        name="v11-provider-quota",
        description="the rate gate spent alphavantage's quota -> a human is asked, with the quotas, to approve"
        " resetting that provider; approved, that provider alone is reset",
        faults=(("provider_quota_exhausted", {"provider": "alphavantage"}),),
        alerts=("RateGateProviderQuotaExhausted",),
        signal='tradeops_service_item_value{service="rate_gate",item="alphavantage",field="remaining"} <= 0',
        rule="reset-provider-quota",
        decision="executed",
        outcome="resolved",
        steps=(
            ("reset-provider", "approval_pending"),
            ("reset-provider", "approved"),
            ("reset-provider", "when_holds"),  # then reset; verified or resolved first, whichever comes
        ),
        approval="approve",
        profile="ai-trading-v1.1",
    ),
)
# AI Trading System (seed 002): restart, maintenance mode on corruption, the halt that waits for a human.
AI_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="ai-service-down",
        description="the trade executor's container stops -> restarted",
        faults=(("service_down", {"service": "trade_executor"}),),
        alerts=("AiTradingServiceDown",),
        signal='tradeops_service_up{service="trade_executor"} == 0',
        rule="restart-service",
        decision="executed",
        outcome="resolved",
        needs_docker=True,
        profile="ai-trading",
    ),
    Scenario(
        name="ai-memory-leak",
        description="the trade executor's container leaks memory past 80 % of its limit -> that one container"
        " restarted, its memory verified to fall",
        faults=(("memory_leak", {"service": "trade_executor", "mib_per_second": 16}),),
        alerts=("AiTradingContainerMemoryLeak",),
        signal="tradeops_container_memory_usage_bytes / tradeops_container_memory_limit_bytes > 0.8",
        rule="restart-leaking-service",
        decision="executed",
        outcome="resolved",
        steps=(("restart-service", "when_holds"),),  # then restarted; verified or resolved first, whichever comes
        needs_docker=True,
        profile="ai-trading",
    ),
    Scenario(
        name="ai-data-corruption",
        description="integrity checks find corrupt data -> read-only maintenance mode, and a human is called",
        faults=(("data_corruption", {}),),
        alerts=("AiTradingDataCorruption",),
        signal='tradeops_service_value{field="integrity_errors"} > 0',
        rule="maintenance-on-corruption",  # then (continue) escalate-emergency pages a human
        decision="executed",
        outcome="escalated",
        escalation="escalation_only",
        profile="ai-trading",
    ),
    Scenario(
        name="ai-large-loss",
        description="the day's P&L falls to -8% -> a human is asked at once to approve the emergency halt; nobody"
        " answers: trading is not halted, paged approval_expired",
        faults=(("large_loss", {}),),
        alerts=("AiTradingLargeLoss",),
        signal='tradeops_service_value{field="daily_pnl_ratio"} < -0.05',
        rule="halt-on-large-loss",
        decision="executed",
        escalation="approval_expired",
        page_has=("assess: diagnosed - 1 of 1 probes answered", "emergency-halt: approval_expired"),
        outcome="escalated",
        min_actions=0,
        max_actions=0,
        steps=(("emergency-halt", "approval_pending"), ("emergency-halt", "expired")),
        profile="ai-trading",
    ),
)
ALL_SCENARIOS = (*SCENARIOS, TWO_FAULTS, *TRADEMASTER_SCENARIOS, *V11_SCENARIOS, *AI_SCENARIOS)


def by_name(name: str) -> Scenario:
    """Return the scenario with this name (KeyError lists the known ones)."""
    for scenario in ALL_SCENARIOS:
        if scenario.name == name:
            return scenario
    raise KeyError(f"unknown scenario {name!r}; known: {', '.join(s.name for s in ALL_SCENARIOS)}")
