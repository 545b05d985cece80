"""With the shared Redis state, what the console and the read API show: every incident the runtime keeps in Redis
is readable from the audit store, the one the pages and `GET /api/v1/incidents` query."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.remediator_helpers import alert, auth, config, payload, post, recorder, remediator_client, settle

pytestmark = pytest.mark.integration


async def test_an_incident_kept_in_redis_is_listed_by_the_read_api_and_its_timeline_opens(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = "{tradeops-test-" + uuid.uuid4().hex + "}"
    async with recorder() as (base, _calls):
        cfg = config(tmp_path, base, state="redis", state_redis={"url": redis_url, "key_prefix": prefix})
        async with remediator_client(cfg) as (client, remediator):
            acted = alert()  # trigger-generation: acts
            judged = alert(name="ApiLatencyHigh")  # judgement: escalates
            assert (await post(client, payload(acted, judged)))[0] == 200
            await settle(remediator)
            listed = await (await client.get("/api/v1/incidents", headers=auth())).json()
            names = sorted(i["alertname"] for i in listed["incidents"])
            key = next(i["id"] for i in listed["incidents"] if i["alertname"] == "StrategyGenerationStalled")
            detail = await client.get(f"/api/v1/incidents/{quote(key, safe='')}", headers=auth())
            body = await detail.json()
            state = remediator.engine.state
            keys = await state.redis.keys(prefix + "*")  # type: ignore[attr-defined]
            if keys:
                await state.redis.delete(*keys)  # type: ignore[attr-defined]
    assert names == ["ApiLatencyHigh", "StrategyGenerationStalled"]
    assert detail.status == 200
    assert body["incident"]["attempts"] == 1
