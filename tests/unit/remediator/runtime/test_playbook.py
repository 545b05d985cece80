"""Playbooks on a served remediator: each step tried in order, skipped when its precondition does not hold,
verified on the incident's own timer, the next step when verification fails, a human with the history at the end.
Conditions come from a scripted stand-in for Prometheus (the real client is tested against a real Prometheus)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.remediator_helpers import alert, config, payload, post, recorder, remediator_client, settle

Calls = list[tuple[str, Any]]


@dataclass(frozen=True)
class Answer:
    ok: bool
    holds: bool
    seen: str
    error: str = ""


@dataclass
class ScriptedPrometheus:
    """Answers each query from a script: a set of queries that hold; queries that fail; the rest are empty."""

    holding: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)
    asked: list[str] = field(default_factory=list)

    async def query(self, expr: str) -> Answer:
        self.asked.append(expr)
        if expr in self.failing:
            return Answer(False, False, "", "connection refused")
        if expr in self.holding:
            return Answer(True, True, f"{expr} 1")
        return Answer(True, False, "")


def ladder(base: str, **first: Any) -> dict[str, Any]:
    return {
        "name": "queue-ladder",
        "matchers": ['alertname="QueueDepthHigh"'],
        "steps": [
            {
                "name": "restart-consumer",
                "action": "http_request",
                "params": {"method": "POST", "url": f"{base}/platform/restart"},
                "verify": {"query": "draining", "within_seconds": 0.4, "every_seconds": 0.05},
                **first,
            },
            {
                "name": "purge-old",
                "action": "http_request",
                "params": {"method": "POST", "url": f"{base}/platform/purge"},
                "verify": {"query": "drained", "within_seconds": 0.4, "every_seconds": 0.05},
            },
        ],
        "cooldown_minutes": 0,
        "rate": {"per_minute": 600, "burst": 100},
        "retries": 0,
    }


async def run(tmp_path: Path, prometheus: ScriptedPrometheus, flip: str = "", **first: Any) -> tuple[Calls, list[Any]]:
    """Send one QueueDepthHigh and let its playbook run to its end (bounded); return the calls and the audit."""
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base, rules=[ladder(base, **first)])
        async with remediator_client(cfg) as (client, remediator):
            remediator.engine.conditions = prometheus
            await post(client, payload(alert(name="QueueDepthHigh", queue="orders")))
            await settle(remediator)
            for _ in range(200):
                if flip and any(path == "/platform/purge" for path, _ in calls):
                    prometheus.holding.add(flip)
                entries = await remediator.engine.store.recent(100)
                if any(e["decision"] in {"verified"} for e in entries) or any(
                    path == "/escalations" for path, _ in calls
                ):
                    break
                await asyncio.sleep(0.05)
            await settle(remediator)
            entries = await remediator.engine.store.recent(100)
    return calls, entries


def paths(calls: Calls) -> list[str]:
    return [path for path, _ in calls if path.startswith("/platform/")]


def pages(calls: Calls) -> list[dict[str, Any]]:
    return [body for path, body in calls if path == "/escalations"]


async def test_a_ladder_whose_first_step_does_not_help_runs_the_second_and_ends_when_it_is_verified(
    tmp_path: Path,
) -> None:
    calls, entries = await run(tmp_path, ScriptedPrometheus(), flip="drained")
    assert paths(calls) == ["/platform/restart", "/platform/purge"]
    steps = [(e["decision"], e["detail"].split(":")[0]) for e in reversed(entries) if e["event"] == "step"]
    assert steps == [("not_verified", "restart-consumer"), ("verified", "purge-old")]
    assert pages(calls) == []


async def test_a_ladder_with_no_step_verified_pages_a_human_with_what_was_tried_and_seen(tmp_path: Path) -> None:
    calls, _ = await run(tmp_path, ScriptedPrometheus())
    assert paths(calls) == ["/platform/restart", "/platform/purge"]
    (page,) = pages(calls)
    assert page["reason"] == "playbook_exhausted"
    assert "restart-consumer: ran" in page["detail"]
    assert "purge-old: not_verified" in page["detail"]


async def test_a_step_whose_precondition_does_not_hold_is_skipped_and_recorded(tmp_path: Path) -> None:
    calls, entries = await run(tmp_path, ScriptedPrometheus(), flip="drained", when="still_growing")
    assert paths(calls) == ["/platform/purge"]
    skipped = [e for e in entries if e["event"] == "step" and e["decision"] == "skipped"]
    assert [e["detail"].split(":")[0] for e in skipped] == ["restart-consumer"]


async def test_a_failed_verification_query_never_counts_as_verified(tmp_path: Path) -> None:
    prometheus = ScriptedPrometheus(failing={"draining", "drained"})
    calls, entries = await run(tmp_path, prometheus)
    assert not any(e["decision"] == "verified" for e in entries)
    (page,) = pages(calls)
    assert "query failed" in page["detail"]


async def test_a_resolve_stops_the_playbook_between_steps(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        rule = ladder(base)
        rule["steps"][0]["verify"]["within_seconds"] = 30
        async with remediator_client(config(tmp_path, base, rules=[rule])) as (client, remediator):
            remediator.engine.conditions = ScriptedPrometheus()
            firing = alert(name="QueueDepthHigh", queue="orders")
            await post(client, payload(firing))
            await settle(remediator)
            await post(client, payload({**firing, "status": "resolved"}))
            await settle(remediator)
            await asyncio.sleep(0.5)
    assert paths(calls) == ["/platform/restart"]
    assert pages(calls) == []


async def test_a_diagnose_step_puts_its_evidence_in_the_audit_and_on_the_page(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        rule = ladder(base)
        rule["steps"] = [
            {
                "kind": "diagnose",
                "name": "look",
                "probes": [
                    {"kind": "http_get", "name": "status", "url": f"{base}/platform/status"},
                    {"kind": "redis_info", "name": "redis"},
                ],
                "timeout_seconds": 5,
            },
            rule["steps"][0],
        ]
        cfg = config(tmp_path, base, rules=[rule], backends={"redis_url": "redis://127.0.0.1:6379/15"})
        async with remediator_client(cfg) as (client, remediator):
            remediator.engine.conditions = ScriptedPrometheus()
            await post(client, payload(alert(name="QueueDepthHigh", queue="orders")))
            for _ in range(200):
                if any(path == "/escalations" for path, _ in calls):
                    break
                await asyncio.sleep(0.05)
            await settle(remediator)
            entries = await remediator.engine.store.recent(100)
    evidence = {e["detail"].split(":")[0]: e["decision"] for e in entries if e["event"] == "evidence"}
    assert evidence == {"status": "ok", "redis": "ok"}
    (page,) = pages(calls)
    assert "look: diagnosed - 2 of 2 probes answered" in page["detail"]
    assert "evidence: status:" in page["detail"]
    assert "redis:" in page["detail"]
    assert paths(calls)[0] == "/platform/status"  # the read-only GET, before the act step


async def test_a_resend_while_a_step_is_being_verified_neither_reruns_nor_pages_early(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        rule = ladder(base)
        rule["steps"][0]["verify"]["within_seconds"] = 1.0
        rule.update({"max_attempts": 1, "retry_after_minutes": 0.001})  # the retry window is long past on resend
        async with remediator_client(config(tmp_path, base, rules=[rule])) as (client, remediator):
            remediator.engine.conditions = ScriptedPrometheus()
            firing = alert(name="QueueDepthHigh", queue="orders")
            await post(client, payload(firing))
            await settle(remediator)
            await asyncio.sleep(0.2)
            await post(client, payload(firing))  # Alertmanager's resend, mid-verification
            await settle(remediator)
            assert pages(calls) == []  # no max_attempts page before the playbook has run its course
            for _ in range(200):
                if pages(calls):
                    break
                await asyncio.sleep(0.05)
            entries = await remediator.engine.store.recent(100)
    assert [p["reason"] for p in pages(calls)] == ["playbook_exhausted"]
    assert "deduplicated" in [e["decision"] for e in entries if e["event"] == "decision"]


# --- a playbook that gathers evidence, then hands the incident to a human ---------------------------------------


def handover(base: str, *probes: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """A P0 rule as the profiles write it: diagnose, then page (the escalate action) with what was seen."""
    return {
        "name": "page-datastore-down",
        "matchers": ['alertname="PostgresDown"'],
        "steps": [
            {
                "kind": "diagnose",
                "name": "look",
                "probes": list(probes) or [{"kind": "http_get", "name": "status", "url": f"{base}/platform/status"}],
                "timeout_seconds": timeout,
            },
            {"name": "page", "action": "escalate", "params": {"note": "the database is down"}},
        ],
    }


GENERATE = {
    "name": "trigger-generation",
    "matchers": ['alertname="StrategyGenerationStalled"'],
    "action": "http_request",
    "cooldown_minutes": 0,
    "retries": 0,
}


async def test_a_playbook_ending_in_escalate_pages_once_with_its_evidence_as_soon_as_it_is_gathered(
    tmp_path: Path,
) -> None:
    async with (
        recorder() as (base, calls),
        remediator_client(config(tmp_path, base, rules=[handover(base)])) as (
            client,
            remediator,
        ),
    ):
        firing = alert(name="PostgresDown")
        await post(client, payload(firing))
        await settle(remediator)
        first = pages(calls)  # one settle: the page does not wait for any verify
        await post(client, payload(firing))  # Alertmanager's resend
        await settle(remediator)
        entries = await remediator.engine.store.recent(100)
    (page,) = first
    assert page["reason"] == "escalation_only"
    assert "the database is down" in page["detail"]
    assert "look: diagnosed - 1 of 1 probes answered" in page["detail"]
    assert "evidence: status: GET " in page["detail"]
    assert pages(calls) == first  # one page per incident; the resend gathers nothing again
    assert paths(calls) == ["/platform/status"]
    assert not any(e["event"] == "action" for e in entries)  # the escalate action is a page, never run


async def one_action_an_hour(tmp_path: Path, *names: str) -> tuple[Calls, list[str]]:
    """Send the alerts one after the other under an hourly budget of one action; return the calls and decisions."""
    async with recorder() as (base, calls):
        generate = {**GENERATE, "params": {"method": "POST", "url": f"{base}/platform/generate"}}
        limits = {"actions_per_hour": 1, "concurrency": 2, "queue_size": 100}
        cfg = config(tmp_path, base, rules=[handover(base), generate], limits=limits)
        async with remediator_client(cfg) as (client, remediator):
            for name in names:
                await post(client, payload(alert(name=name)))
                await settle(remediator)
            entries = await remediator.engine.store.recent(100)
    return calls, [e["decision"] for e in reversed(entries) if e["event"] == "decision"]


async def test_a_handover_page_goes_out_with_evidence_when_the_action_budget_is_spent(tmp_path: Path) -> None:
    calls, decided = await one_action_an_hour(tmp_path, "StrategyGenerationStalled", "PostgresDown")
    assert paths(calls) == ["/platform/generate", "/platform/status"]
    assert decided == ["executed", "escalation_only"]  # not rate_limited: a page is not an action
    (page,) = pages(calls)
    assert page["reason"] == "escalation_only"
    assert "evidence: status: GET " in page["detail"]


async def test_a_handover_spends_no_action_budget(tmp_path: Path) -> None:
    calls, decided = await one_action_an_hour(tmp_path, "PostgresDown", "StrategyGenerationStalled")
    assert paths(calls) == ["/platform/status", "/platform/generate"]  # the one action of the hour still ran
    assert decided == ["escalation_only", "executed"]


async def test_an_escalate_only_rule_still_pages_at_once_without_steps(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        stepped = {
            "name": "judgement-steps",
            "matchers": ['alertname="PostgresDown"'],
            "steps": [{"name": "page", "action": "escalate"}],
        }
        judgement = {"name": "judgement", "matchers": ['alertname="ApiLatencyHigh"'], "action": "escalate"}
        async with remediator_client(config(tmp_path, base, rules=[judgement, stepped])) as (client, remediator):
            await post(client, payload(alert(name="ApiLatencyHigh"), alert(name="PostgresDown")))
            await settle(remediator)
            entries = await remediator.engine.store.recent(100)
    details = sorted((p["reason"], p["detail"]) for p in pages(calls))
    assert details == [
        ("escalation_only", "rule judgement hands this alert to a human"),
        ("escalation_only", "rule judgement-steps hands this alert to a human"),
    ]
    assert not any(e["event"] in {"step", "evidence", "action"} for e in entries)


@asynccontextmanager
async def hanging_server() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A loopback TCP server that accepts, reads nothing and never answers; the event is set on a connection."""
    held: list[asyncio.StreamWriter] = []
    connected = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        connected.set()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connected
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def hanging_handover(base: str, port: int, timeout: float) -> dict[str, Any]:
    hang = {"kind": "http_get", "name": "hang", "url": f"http://127.0.0.1:{port}/status"}
    status = {"kind": "http_get", "name": "status", "url": f"{base}/platform/status"}
    return handover(base, hang, status, timeout=timeout)


async def test_a_hanging_probe_is_cut_at_the_diagnose_deadline_and_the_page_still_goes_out(tmp_path: Path) -> None:
    async with hanging_server() as (port, _), recorder() as (base, calls):
        prefixes = [f"{base}/platform/", f"http://127.0.0.1:{port}/"]
        cfg = config(tmp_path, base, rules=[hanging_handover(base, port, 0.5)], allowed_url_prefixes=prefixes)
        async with remediator_client(cfg) as (client, remediator):
            await post(client, payload(alert(name="PostgresDown")))
            await settle(remediator)
            entries = await remediator.engine.store.recent(100)
    evidence = {e["detail"].split(":")[0]: e["decision"] for e in entries if e["event"] == "evidence"}
    assert evidence == {"hang": "failed", "status": "ok"}
    (page,) = pages(calls)
    assert page["reason"] == "escalation_only"
    assert "look: diagnosed - 1 of 2 probes answered" in page["detail"]
    assert "hang: " in page["detail"]


async def test_a_resolve_accepted_while_the_evidence_is_gathered_sends_no_page(tmp_path: Path) -> None:
    async with hanging_server() as (port, connected), recorder() as (base, calls):
        prefixes = [f"{base}/platform/", f"http://127.0.0.1:{port}/"]
        cfg = config(tmp_path, base, rules=[hanging_handover(base, port, 2.0)], allowed_url_prefixes=prefixes)
        async with remediator_client(cfg) as (client, remediator):
            firing = alert(name="PostgresDown")
            await post(client, payload(firing))
            await asyncio.wait_for(connected.wait(), 10)  # the diagnose step is under way
            await post(client, payload({**firing, "status": "resolved"}))
            await settle(remediator)
            entries = await remediator.engine.store.recent(100)
    assert pages(calls) == []
    assert any(e["event"] == "step" and e["decision"] == "not_run" for e in entries)


async def test_a_ladder_ending_in_escalate_pages_with_its_history_once_its_last_remedy_is_not_verified(
    tmp_path: Path,
) -> None:
    async with recorder() as (base, calls):
        rule = ladder(base)
        rule["steps"] = [rule["steps"][0], {"name": "page", "action": "escalate", "params": {"note": "over to you"}}]
        async with remediator_client(config(tmp_path, base, rules=[rule])) as (client, remediator):
            remediator.engine.conditions = ScriptedPrometheus()
            await post(client, payload(alert(name="QueueDepthHigh", queue="orders")))
            for _ in range(200):
                if pages(calls):
                    break
                await asyncio.sleep(0.05)
            await settle(remediator)
    assert paths(calls) == ["/platform/restart"]
    (page,) = pages(calls)
    assert page["reason"] == "escalation_only"
    assert "restart-consumer: not_verified" in page["detail"]
    assert "page: handed_over - over to you" in page["detail"]
