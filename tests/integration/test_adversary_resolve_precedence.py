"""A resolve wins over a retry or a late copy waiting for the same lock, in one process and across Redis replicas,
and an upper-case fingerprint names the same incident (attacks that broke c3d287f; each failed there)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from remediator.intake.payload import WebhookAlert
from tests.integration.test_adversary_guarantees import (
    audit,
    audit_until,
    base_config,
    decided,
    remediator,
    send,
    stand,
)
from tests.remediator_helpers import alert

pytestmark = pytest.mark.integration
REDIS = "redis://127.0.0.1:6379/11"


async def test_a_resolve_received_while_the_action_overruns_its_retry_period_stops_the_retry(tmp_path: Path) -> None:
    async with stand() as st:
        st.action_gate = asyncio.Event()
        config = base_config(tmp_path, st.url, retry_after_minutes=0.02, escalate_after_minutes=60)
        async with remediator(tmp_path, config) as rem:
            firing = alert()
            key = WebhookAlert.validate(firing).incident_key
            await send(rem, firing)
            await asyncio.wait_for(st.action_started.wait(), 10)
            await asyncio.sleep(2.0)  # the retry (1.2 s) falls due while the action still runs
            await send(rem, {**firing, "status": "resolved"})  # acknowledged 200 while the action runs
            await asyncio.sleep(0.5)
            st.action_gate.set()
            await audit_until(rem, lambda e: "resolved" in decided(e, key), 15, "the resolve")
            await asyncio.sleep(2.0)
            entries = await audit(rem)
        print([(e["event"], e["rule"], e["decision"], e["detail"][:80]) for e in entries])
        assert len(st.actions) == 1, entries
        assert decided(entries, key) == ["executed", "resolved"]


async def test_a_resolve_with_an_upper_case_fingerprint_is_final_for_the_lower_case_late_copy(tmp_path: Path) -> None:
    async with stand() as st:
        config = base_config(tmp_path, st.url)
        firing = {**alert(), "fingerprint": "abcdef0123456789"}
        async with remediator(tmp_path, config) as rem:
            await send(rem, {**firing, "fingerprint": "ABCDEF0123456789", "status": "resolved"})
            await send(rem, firing)
            await asyncio.sleep(2.0)
            entries = await audit(rem)
        print([(e["incident"], e["event"], e["decision"]) for e in entries])
        assert st.actions == []


def redis_config(tmp_path: Path, url: str, prefix: str, dsn: str, name: str, **fix: Any) -> dict[str, Any]:
    config = base_config(tmp_path, url, **fix)
    config.pop("audit_path")
    config.update(
        {
            "replica": name,
            "state": "redis",
            "state_redis": {"url": REDIS, "key_prefix": prefix, "lock_margin_seconds": 1, "timeout_seconds": 1},
            "audit": "postgres",
            "audit_postgres": {"dsn": dsn, "timeout_seconds": 2},
        }
    )
    return config


async def test_redis_replicas_a_resolve_at_b_during_as_long_action_wins_over_a_late_copy_at_a(
    tmp_path: Path, postgres_dsn: str
) -> None:
    prefix = "{adv-" + uuid.uuid4().hex[:10] + "}"
    async with stand() as st:
        st.action_gate = asyncio.Event()
        kw = {"retry_after_minutes": 0.02, "escalate_after_minutes": 60}
        a_cfg = redis_config(tmp_path, st.url, prefix, postgres_dsn, "adv-a", **kw)
        b_cfg = redis_config(tmp_path, st.url, prefix, postgres_dsn, "adv-b", **kw)
        async with remediator(tmp_path, a_cfg, "adv-a") as a, remediator(tmp_path, b_cfg, "adv-b") as b:
            firing = alert()
            key = WebhookAlert.validate(firing).incident_key
            await send(a, firing)
            await asyncio.wait_for(st.action_started.wait(), 10)
            await asyncio.sleep(0.3)
            await send(b, {**firing, "status": "resolved"})  # resolve at B while A's action runs
            await asyncio.sleep(1.5)
            await send(a, firing)  # Alertmanager's resend, queued at A after the resolve
            await asyncio.sleep(0.3)
            st.action_gate.set()
            await audit_until(a, lambda e: "resolved" in decided(e, key), 20, "the resolve")
            await asyncio.sleep(2.5)
            entries = await audit(a)
        print([(e.get("replica", ""), e["event"], e["decision"], e["detail"][:60]) for e in entries])
        assert len(st.actions) == 1
