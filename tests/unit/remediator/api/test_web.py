"""The webhook end to end in one process: statuses, decisions, dedup, escalation, restart safety."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.web import free_port
from remediator.policy.decide import Reason
from remediator.state.base import Admission, Denial
from remediator.state.memory import MemoryState
from tests.remediator_helpers import (
    alert,
    auth,
    config,
    decisions,
    payload,
    post,
    recorder,
    remediator_client,
    rewind,
    settle,
)


def platform_calls(calls: list[tuple[str, Any]]) -> list[str]:
    return [path for path, _ in calls if path.startswith("/platform/")]


def escalations(calls: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    return [body for path, body in calls if path == "/escalations"]


async def test_missing_or_wrong_token_is_401_and_nothing_is_recorded(tmp_path: Path) -> None:
    async with recorder() as (base, calls), remediator_client(config(tmp_path, base)) as (client, remediator):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
            response = await client.post("/webhook", json=payload(alert()), headers=headers)
            assert response.status == 401
            assert "token" in (await response.json())["error"]
        assert await remediator.engine.store.recent(10) == []
        response = await client.get("/api/v1/remediations")
        assert response.status == 401
    assert calls == []


async def test_bad_bodies_get_413_415_and_422_with_json_errors(tmp_path: Path) -> None:
    cfg = config(tmp_path, "http://127.0.0.1:1", limits={"max_body_bytes": 65536})
    async with remediator_client(cfg) as (client, _):
        big = await client.post(
            "/webhook", data=io.BytesIO(b"x" * 10_000_000), headers={**auth(), "Content-Type": "application/json"}
        )
        assert big.status == 413
        text = await client.post("/webhook", data=b"{}", headers={**auth(), "Content-Type": "text/plain"})
        assert text.status == 415
        broken = await client.post(
            "/webhook", data=b"{not json", headers={**auth(), "Content-Type": "application/json"}
        )
        assert broken.status == 422
        wrong_version = await client.post("/webhook", json={**payload(alert()), "version": "3"}, headers=auth())
        assert wrong_version.status == 422
        assert "details" in await wrong_version.json()
        bad_fingerprint = await client.post(
            "/webhook", json=payload({**alert(), "fingerprint": "../../x"}), headers=auth()
        )
        assert bad_fingerprint.status == 422


async def test_a_firing_alert_runs_its_action_once_and_a_resend_is_deduplicated(tmp_path: Path) -> None:
    async with recorder() as (base, calls), remediator_client(config(tmp_path, base)) as (client, remediator):
        status, body = await post(client, payload(alert()))
        assert status == 200
        assert body == {"accepted": 1, "truncated": 0}
        await settle(remediator)
        await post(client, payload(alert()))
        await settle(remediator)
        entries = await remediator.engine.store.recent(50)
    assert platform_calls(calls) == ["/platform/generate"]
    assert [body for path, body in calls if path == "/platform/generate"] == [{"count": 500}]
    assert decisions(entries) == ["executed", "deduplicated"]


async def test_a_group_mixing_firing_and_resolved_uses_each_alerts_own_status(tmp_path: Path) -> None:
    async with recorder() as (base, calls), remediator_client(config(tmp_path, base)) as (client, remediator):
        first = alert(collector="binance", name="CollectorFailed")
        await post(client, payload(first))
        await settle(remediator)
        resolved = {**first, "status": "resolved"}
        await post(client, payload(resolved, alert()))
        await settle(remediator)
        entries = await remediator.engine.store.recent(50)
    assert sorted(platform_calls(calls)) == ["/platform/collectors/binance/reset", "/platform/generate"]
    assert "resolved" in decisions(entries)


async def test_label_values_outside_the_allowlist_never_reach_an_action(tmp_path: Path) -> None:
    hostile = [
        "../../admin",
        "binance; rm -rf /",
        "$(reboot)",
        "binance\nkraken",
        "bin.*",
        "BINANCE",
        "\uff42\uff49\uff4e\uff41\uff4e\uff43\uff45",
    ]  # fullwidth "binance"
    async with recorder() as (base, calls), remediator_client(config(tmp_path, base)) as (client, remediator):
        for value in hostile:
            status, _ = await post(client, payload(alert(name="CollectorFailed", collector=value)))
            assert status == 200
        await settle(remediator)
        entries = await remediator.engine.store.recent(100)
    assert platform_calls(calls) == []
    assert decisions(entries) == ["not_allowed"] * len(hostile)
    assert len(escalations(calls)) == len(hostile)  # denied actions escalate, once per incident


async def test_resolved_alert_never_acts_and_closes_an_escalated_incident(tmp_path: Path) -> None:
    async with recorder() as (base, calls), remediator_client(config(tmp_path, base)) as (client, remediator):
        judged = alert(name="ApiLatencyHigh")
        await post(client, payload(judged))
        await settle(remediator)
        await post(client, payload({**judged, "status": "resolved"}))
        await settle(remediator)
    sent = escalations(calls)
    assert [e["resolved"] for e in sent] == [False, True]
    assert sent[0]["reason"] == "escalation_only"


async def test_a_failing_action_is_retried_then_escalated_and_opens_the_breaker(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base, circuit_breaker={"failures": 2, "open_minutes": 60})
        async with remediator_client(cfg) as (client, remediator):
            for index in range(3):
                await post(client, payload(alert(name="BrokenThing", instance=str(index))))
                await settle(remediator)
            entries = await remediator.engine.store.recent(100)
            metrics = await (await client.get("/metrics")).text()
    assert platform_calls(calls) == ["/platform/fail"] * 4  # 2 incidents x (1 try + 1 retry); the 3rd is refused
    assert decisions(entries) == ["executed", "executed", "circuit_open"]
    assert [e["reason"] for e in escalations(calls)] == ["action_failed", "action_failed", "circuit_open"]
    assert 'tradeops_remediator_circuit_open{rule="broken-endpoint",target="broken-endpoint"} 1.0' in metrics


async def test_every_decision_reason_is_reachable(tmp_path: Path) -> None:
    reached: set[str] = set()
    async with recorder() as (base, _):
        scenarios: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
            (
                {},
                [
                    alert(name="Unmatched"),
                    alert(name="ApiLatencyHigh"),
                    alert(name="Noise"),
                    alert(),
                    alert(),
                    alert(name="CollectorFailed", collector="evil"),
                ],
            ),
            ({"dry_run": True}, [alert()]),
            ({"limits": {"actions_per_hour": 0}}, [alert()]),
            ({"maintenance_windows": [{"name": "always", "time_intervals": [{}]}]}, [alert()]),
            # a Redis state nobody listens for: every decision fails closed
            ({"state": "redis", "state_redis": {"url": f"redis://127.0.0.1:{free_port()}/0"}}, [alert()]),
        ]
        for index, (overrides, alerts) in enumerate(scenarios):
            folder = tmp_path / str(index)
            async with remediator_client(config(folder, base, **overrides)) as (client, remediator):
                for item in alerts:
                    await post(client, payload(item))
                    await settle(remediator)
                await post(client, payload({**alerts[-1], "status": "resolved"}))
                await settle(remediator)
                await post(client, payload(alerts[-1]))  # a late firing copy of the resolved incident
                await settle(remediator)
                reached |= set(decisions(await remediator.engine.store.recent(100)))
        # max attempts: two attempts (the retry falls due after retry_after_minutes), then no more
        cfg = config(tmp_path / "max", base)
        async with remediator_client(cfg) as (client, remediator):
            for _ in range(3):
                await post(client, payload(alert()))
                await settle(remediator)
                await rewind(remediator, alert()["fingerprint"], hours=2)
            reached |= set(decisions(await remediator.engine.store.recent(100)))
        # cooldown and rate limit: two incidents on one target
        rules = [r.model_copy(update={"cooldown_minutes": 60.0}) for r in cfg.rules]
        async with remediator_client(
            cfg.model_copy(update={"rules": tuple(rules), "audit_path": tmp_path / "c.db"})
        ) as (
            client,
            remediator,
        ):
            await post(client, payload(alert(), alert(starts="2026-11-22T04:00:00Z")))
            await settle(remediator)
            reached |= set(decisions(await remediator.engine.store.recent(100)))
        rules = [
            r.model_copy(update={"rate": r.rate.model_copy(update={"burst": 1, "per_minute": 0.001})})
            for r in cfg.rules
        ]
        async with remediator_client(
            cfg.model_copy(update={"rules": tuple(rules), "audit_path": tmp_path / "r.db"})
        ) as (
            client,
            remediator,
        ):
            await post(client, payload(alert(), alert(starts="2026-11-22T04:00:00Z")))
            await settle(remediator)
            reached |= set(decisions(await remediator.engine.store.recent(100)))
        # circuit open
        async with remediator_client(
            config(tmp_path / "cb", base, circuit_breaker={"failures": 1, "open_minutes": 60})
        ) as (
            client,
            remediator,
        ):
            await post(client, payload(alert(name="BrokenThing")))
            await settle(remediator)
            await post(client, payload(alert(name="BrokenThing", instance="2")))
            await settle(remediator)
            reached |= set(decisions(await remediator.engine.store.recent(100)))
    assert reached == {reason.value for reason in Reason}


async def test_a_restart_after_the_2xx_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base)
        async with remediator_client(cfg) as (client, remediator):
            await remediator.engine.stop()  # workers down: the alert is acknowledged but not yet processed
            status, _ = await post(client, payload(alert()))
            assert status == 200
        assert platform_calls(calls) == []
        async with remediator_client(cfg) as (client, remediator):  # the restarted process resumes its inbox
            await settle(remediator)
            await post(client, payload(alert()))  # Alertmanager's resend after the restart
            await settle(remediator)
            entries = await remediator.engine.store.recent(100)
    assert platform_calls(calls) == ["/platform/generate"]
    assert decisions(entries) == ["executed", "deduplicated"]


async def test_a_restart_resumes_every_alert_of_a_large_payload(tmp_path: Path) -> None:
    async with recorder() as (base, _):
        cfg = config(tmp_path, base, limits={"actions_per_hour": 5, "concurrency": 4, "queue_size": 1000})
        alerts = [alert(name="Unmatched", instance=f"i{n}") for n in range(200)]  # about 70 KB of JSON
        async with remediator_client(cfg) as (client, remediator):
            await remediator.engine.stop()
            status, _ = await post(client, payload(*alerts))
            assert status == 200
        async with remediator_client(cfg) as (client, remediator):
            await settle(remediator)
            entries = await remediator.engine.store.recent(1000)
    received = [e["labels"]["instance"] for e in reversed(entries) if e["event"] == "received"]
    assert sorted(received) == sorted(f"i{n}" for n in range(200))  # every one, once (workers finish in any order)
    assert decisions(entries) == ["no_rule"] * 200


async def test_ten_thousand_alerts_in_one_payload_are_all_accounted_for(tmp_path: Path) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base, limits={"actions_per_hour": 5, "concurrency": 4, "queue_size": 20000})
        async with remediator_client(cfg) as (client, remediator):
            alerts = [alert(instance=f"i{n}") for n in range(10_000)]
            status, body = await post(client, payload(*alerts, truncated=7))
            assert status == 200, body
            assert body["accepted"] == 10_000
            await settle(remediator)
            entries = await remediator.engine.store.recent(10_000 * 4)
            metrics = await (await client.get("/metrics")).text()
    assert len(platform_calls(calls)) == 5  # the hourly budget holds
    assert len([e for e in entries if e["event"] == "received"]) == 10_000
    assert len([e for e in entries if e["event"] == "decision"]) == 10_000
    assert "tradeops_remediator_truncated_alerts_total 7.0" in metrics


async def test_a_full_queue_answers_503_so_alertmanager_retries(tmp_path: Path) -> None:
    cfg = config(tmp_path, "http://127.0.0.1:1", limits={"queue_size": 3})
    async with remediator_client(cfg) as (client, remediator):
        await remediator.engine.stop()
        status, _ = await post(client, payload(alert(instance="a"), alert(instance="b")))
        assert status == 200
        status, body = await post(client, payload(alert(instance="c"), alert(instance="d")))
        assert status == 503
        assert "retry" in body["error"]
        assert (await client.get("/-/ready")).status == 200
        assert len(await remediator.engine.store.pending()) == 2  # the first payload is on record, to resume


async def test_unicode_and_control_characters_in_labels_are_recorded_verbatim(tmp_path: Path) -> None:
    odd = "ünïcødé \x00\x1b[31m\u202e 🚨"
    async with recorder() as (base, _), remediator_client(config(tmp_path, base)) as (client, remediator):
        status, _ = await post(client, payload(alert(name="Unmatched", note=odd)))
        assert status == 200
        await settle(remediator)
        response = await client.get("/api/v1/remediations?limit=5", headers=auth())
        body = await response.json()
    assert body["remediations"][0]["labels"]["note"] == odd
    assert body["remediations"][0]["decision"] == "no_rule"


label_text = st.text(min_size=0, max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(label_text, min_size=1, max_size=5), status=st.sampled_from(["firing", "resolved"]))
async def test_no_label_value_outside_the_allowlist_ever_reaches_the_platform(
    tmp_path: Path, values: list[str], status: str
) -> None:
    async with recorder() as (base, calls):
        cfg = config(tmp_path, base, audit_path=str(tmp_path / f"h{abs(hash(tuple(values)))}.db"))
        async with remediator_client(cfg) as (client, remediator):
            alerts = [
                {**alert(name="CollectorFailed", collector=v, n=str(i)), "status": status} for i, v in enumerate(values)
            ]
            response = await client.post(
                "/webhook", data=json.dumps(payload(*alerts)), headers={**auth(), "Content-Type": "application/json"}
            )
            assert response.status in {200, 422}
            await settle(remediator)
    for path in platform_calls(calls):
        assert path in {"/platform/collectors/binance/reset", "/platform/collectors/kraken/reset"}
    if status == "resolved":
        assert platform_calls(calls) == []


async def test_escalations_take_the_pagerduty_events_v2_shape_with_a_routing_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "routing_key"
    key_file.write_text("R0UT1NG\n")
    async with recorder() as (base, calls):
        cfg = config(
            tmp_path,
            base,
            escalation={
                "webhooks": [{"url": f"{base}/escalations", "shape": "pagerduty", "routing_key_file": str(key_file)}],
            },
        )
        async with remediator_client(cfg) as (client, remediator):
            judged = alert(name="ApiLatencyHigh")
            await post(client, payload(judged))
            await settle(remediator)
            await post(client, payload({**judged, "status": "resolved"}))
            await settle(remediator)
    trigger, resolve = escalations(calls)
    assert trigger["routing_key"] == "R0UT1NG"
    assert trigger["event_action"] == "trigger"
    assert resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "tradeops-remediator"
    assert trigger["payload"]["custom_details"]["alertname"] == "ApiLatencyHigh"


async def test_known_label_values_are_exported_at_zero_before_anything_happens(tmp_path: Path) -> None:
    async with recorder() as (base, _), remediator_client(config(tmp_path, base)) as (client, _remediator):
        text = await (await client.get("/metrics")).text()
    assert 'tradeops_remediator_actions_total{action="http_request",outcome="failure"} 0.0' in text
    assert 'tradeops_remediator_decisions_total{reason="executed",rule="trigger-generation"} 0.0' in text
    assert 'tradeops_remediator_decisions_total{reason="no_rule",rule=""} 0.0' in text
    assert 'tradeops_remediator_escalations_total{reason="still_firing"} 0.0' in text
    assert 'tradeops_remediator_escalation_failures_total{channel="webhook:generic"} 0.0' in text


async def test_the_webhook_counts_alerts_by_their_own_status_and_answers_by_http_code(tmp_path: Path) -> None:
    async with recorder() as (base, _), remediator_client(config(tmp_path, base)) as (client, remediator):
        firing = alert(collector="binance", name="CollectorFailed")
        await post(client, payload(firing, alert(), {**alert(collector="kraken"), "status": "resolved"}))
        await post(client, payload({**firing, "status": "resolved"}))
        await client.post("/webhook", json=payload(alert()), headers={"Authorization": "Bearer wrong"})
        await client.post("/webhook", data=b"{", headers={**auth(), "Content-Type": "application/json"})
        await settle(remediator)
        text = await (await client.get("/metrics")).text()
    assert 'tradeops_remediator_alerts_received_total{status="firing"} 2.0' in text
    assert 'tradeops_remediator_alerts_received_total{status="resolved"} 2.0' in text
    assert 'tradeops_remediator_webhook_requests_total{code="200"} 2.0' in text
    assert 'tradeops_remediator_webhook_requests_total{code="401"} 1.0' in text
    assert 'tradeops_remediator_webhook_requests_total{code="422"} 1.0' in text


async def test_a_stop_finishes_even_when_a_backend_client_swallows_the_cancellation(tmp_path: Path) -> None:
    entered = asyncio.Event()

    class SwallowingState(MemoryState):
        """Catches the cancellation mid-call and answers anyway, as a client library under load can."""

        async def admit(self, admission: Admission, consume: bool) -> Denial | None:
            entered.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
            return Denial.RATE

    async with recorder() as (base, _), remediator_client(config(tmp_path, base)) as (client, remediator):
        engine = remediator.engine
        engine.state = engine.runner.state = engine.runner.actor.state = SwallowingState(engine.store)
        assert (await post(client, payload(alert(), alert(instance="2"))))[0] == 200
        await entered.wait()
        workers = list(engine._workers)
        async with asyncio.timeout(10):  # without the worker's own check this never returns
            await engine.stop()
        assert workers
        assert all(task.done() for task in workers)
