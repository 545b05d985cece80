"""Each chaos fault is injected into its real component and cleared from it, as a remediation would."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import docker
import pytest
import redis.asyncio as aioredis
from sandbox import backups
from sandbox.app import Sandbox
from sandbox.context import FILL_KEY_PREFIX
from sandbox.profiles import PROFILES
from sandbox.settings import SandboxSettings

from common.web import free_port, free_ports
from remediator.actions.postgres import PostgresCancelParams, PostgresCancelQueriesAction
from tests.prereqs import DOCKER_HOST, TEST_IMAGE, unique

pytestmark = pytest.mark.integration


def sandbox_settings(
    postgres_dsn: str, redis_url: str, amqp_url: str, tmp_path: Path, profile: str = "mastertrade", **extra: Any
) -> SandboxSettings:
    services = PROFILES[profile].services
    *ports, control_port = free_ports(len(services) + 1)  # distinct: two free_port() calls may agree
    return SandboxSettings(
        profile=profile,
        ports={spec.name: port for spec, port in zip(services, ports, strict=True)},
        control_port=control_port,
        postgres_dsn=postgres_dsn,
        redis_url=redis_url,
        amqp_url=amqp_url,
        backup_root=tmp_path / "backups",
        **extra,
    )


@contextlib.asynccontextmanager
async def running(settings: SandboxSettings) -> AsyncIterator[Sandbox]:
    """A started sandbox, its faults cleared and everything stopped afterwards."""
    box = Sandbox(settings)
    await box.start()
    try:
        yield box
    finally:
        await box.chaos.clear_all()
        await box.stop()


@pytest.fixture
async def sandbox(postgres_dsn: str, redis_url: str, amqp_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running(sandbox_settings(postgres_dsn, redis_url, amqp_url, tmp_path)) as box:
        yield box


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def inject(http: aiohttp.ClientSession, box: Sandbox, fault: str, body: Any) -> tuple[int, Any]:
    async with http.post(f"{box.urls()['chaos']}/{fault}", json=body) as response:
        return response.status, await response.json()


async def active_faults(http: aiohttp.ClientSession, box: Sandbox) -> list[str]:
    async with http.get(box.urls()["chaos"]) as response:
        assert response.status == 200
        return [f"{item['fault']}:{item['target']}" for item in (await response.json())["active"]]


async def clear_all(http: aiohttp.ClientSession, box: Sandbox) -> None:
    async with http.delete(box.urls()["chaos"]) as response:
        assert response.status == 200


async def health_status(http: aiohttp.ClientSession, url: str) -> int | None:
    try:
        async with http.get(f"{url}/health") as response:
            return response.status
    except aiohttp.ClientConnectionError:
        return None


async def eventually(predicate: Any, attempts: int = 100) -> None:
    for _ in range(attempts):
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition never became true")


async def test_service_down_refuses_connections_until_chaos_is_cleared(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = sandbox.urls()["risk_manager"]
    assert await health_status(http, url) == 200
    status, _ = await inject(http, sandbox, "service_down", {"service": "risk_manager"})
    assert status == 201
    assert await health_status(http, url) is None
    assert await active_faults(http, sandbox) == ["service_down:risk_manager"]
    await clear_all(http, sandbox)
    await eventually(lambda: _is(health_status(http, url), 200))
    assert await active_faults(http, sandbox) == []


async def _is(awaitable: Any, expected: Any) -> bool:
    return bool(await awaitable == expected)


async def test_service_unhealthy_answers_503_until_cleared(sandbox: Sandbox, http: aiohttp.ClientSession) -> None:
    url = sandbox.urls()["order_executor"]
    await inject(http, sandbox, "service_unhealthy", {"service": "order_executor"})
    async with http.get(f"{url}/health") as response:
        assert response.status == 503
        assert (await response.json())["status"] == "unhealthy"
    await clear_all(http, sandbox)
    assert await health_status(http, url) == 200


async def test_slow_api_delays_answers_into_the_histograms_upper_buckets(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = sandbox.urls()["data_access"]
    await inject(http, sandbox, "slow_api", {"service": "data_access", "delay_seconds": 0.25})
    for _ in range(3):
        assert await health_status(http, url) == 200
    async with http.get(f"{url}/metrics") as response:
        text = await response.text()
    fast = _sample(text, 'http_request_duration_seconds_bucket{handler="/health",le="0.2",method="GET",status="200"}')
    total = _sample(text, 'http_request_duration_seconds_count{handler="/health",method="GET",status="200"}')
    assert total >= 3
    assert fast == 0
    await clear_all(http, sandbox)
    assert await active_faults(http, sandbox) == []


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in metrics")


async def test_collector_failed_opens_breaker_and_the_reset_endpoint_clears_it(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = sandbox.urls()["market_data"]
    await inject(http, sandbox, "collector_failed", {"collector": "binance"})
    await inject(http, sandbox, "collector_degraded", {"collector": "kraken"})
    async with http.get(f"{url}/health/collectors") as response:
        collectors = (await response.json())["collectors"]
    assert collectors["binance"]["status"] == "failed"
    assert collectors["binance"]["circuit_breaker"] == "open"
    assert collectors["kraken"]["status"] == "degraded"
    assert collectors["coinbase"]["status"] == "healthy"
    async with http.post(f"{url}/api/collectors/binance/reset") as response:
        assert response.status == 200
    assert await active_faults(http, sandbox) == ["collector_degraded:kraken"]


async def test_generation_stalled_moves_rows_back_and_triggering_generation_clears_it(
    sandbox: Sandbox, http: aiohttp.ClientSession, postgres_dsn: str
) -> None:
    connection = await asyncpg.connect(postgres_dsn)
    recent = "SELECT count(*) FROM strategies WHERE created_at > now() - interval '24 hours'"
    try:
        assert await connection.fetchval(recent) == 500
        await inject(http, sandbox, "generation_stalled", {})
        assert await connection.fetchval(recent) == 0
        async with http.get(f"{sandbox.urls()['strategy']}/api/strategies/generation/status") as response:
            assert (await response.json())["status"] == "stalled"
        assert await active_faults(http, sandbox) == ["generation_stalled:-"]
        async with http.post(f"{sandbox.urls()['strategy']}/api/strategies/generate", json={"count": 500}) as response:
            assert response.status == 202
        assert await connection.fetchval(recent) == 500
        assert await active_faults(http, sandbox) == []
    finally:
        await connection.close()


async def test_generate_rejects_a_count_that_is_not_a_bounded_integer(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = f"{sandbox.urls()['strategy']}/api/strategies/generate"
    for body in ({"count": "500"}, {"count": 0}, {"count": 10_001}, {"count": True}, [1]):
        async with http.post(url, json=body) as response:
            assert response.status == 422
    async with http.post(url, data=b"{nope") as response:
        assert response.status == 400


async def test_a_starting_sandbox_declares_its_consumers_queues_on_a_fresh_broker(
    postgres_dsn: str, redis_url: str, amqp_url: str, tmp_path: Path
) -> None:
    names = PROFILES["mastertrade"].consumer_queues
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)
        async with running(sandbox_settings(postgres_dsn, redis_url, amqp_url, tmp_path)):
            for name in names:
                channel = await connection.channel()
                queue = await channel.declare_queue(name, passive=True)  # raises ChannelClosed when missing
                assert queue.declaration_result.message_count == 0
                await channel.close()
    finally:
        await connection.close()


async def test_queue_buildup_fills_a_real_queue_and_a_purge_clears_it(
    sandbox: Sandbox, http: aiohttp.ClientSession, amqp_url: str
) -> None:
    queue_name = unique("tradeops.test.signals")
    status, body = await inject(http, sandbox, "queue_buildup", {"queue": queue_name, "messages": 1200})
    assert status == 201, body
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        assert queue.declaration_result.message_count == 1200
        assert queue.declaration_result.consumer_count == 0
        assert await active_faults(http, sandbox) == [f"queue_buildup:{queue_name}"]
        await queue.purge()
        assert await active_faults(http, sandbox) == []
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()


async def test_pg_idle_connections_hold_real_sessions_until_terminated(
    sandbox: Sandbox, http: aiohttp.ClientSession, postgres_dsn: str
) -> None:
    app_name = unique("leaky")
    status, body = await inject(
        http, sandbox, "pg_idle_connections", {"count": 4, "state": "idle in transaction", "application_name": app_name}
    )
    assert status == 201, body
    connection = await asyncpg.connect(postgres_dsn)
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction'"
    try:
        assert await connection.fetchval(query, app_name) == 4
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app_name
        )
        await eventually(lambda: _is(connection.fetchval(query, app_name), 0))
        assert await active_faults(http, sandbox) == []
    finally:
        await connection.close()


async def test_backup_stale_ages_real_files_and_a_backup_run_clears_it(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    root = sandbox.settings.backup_root
    await inject(http, sandbox, "backup_stale", {"set": "postgres_daily", "age_hours": 50})
    age = backups.newest_age_seconds(root, "postgres_daily")
    assert age is not None
    assert age > 49 * 3600
    assert await active_faults(http, sandbox) == ["backup_stale:postgres_daily"]
    # The remediation runs the site's backup command; here it is the sandbox's own.
    result = subprocess.run(
        [sys.executable, "-m", "sandbox.main", "--backup-root", str(root), "--backup-now", "postgres_daily"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    written = Path(result.stdout.strip())
    assert written.exists()
    assert gzip.decompress(written.read_bytes())
    assert await active_faults(http, sandbox) == []


async def test_backup_missing_removes_files_and_clear_writes_a_fresh_one(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    root = sandbox.settings.backup_root
    assert backups.backup_files(root, "redis")
    status, body = await inject(http, sandbox, "backup_missing", {"set": "redis"})
    assert status == 201
    assert body["facts"]["removed_files"] >= 1
    assert backups.backup_files(root, "redis") == []
    await clear_all(http, sandbox)
    files = backups.backup_files(root, "redis")
    assert files
    assert files[0].read_bytes().startswith(b"REDIS")


async def test_backup_corrupt_truncates_the_newest_gzip_and_clear_replaces_it(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    root = sandbox.settings.backup_root
    await inject(http, sandbox, "backup_corrupt", {"set": "postgres_incremental"})
    newest = backups.backup_files(root, "postgres_incremental")[0]
    with pytest.raises(EOFError):
        gzip.decompress(newest.read_bytes())
    await clear_all(http, sandbox)
    for path in backups.backup_files(root, "postgres_incremental"):
        assert gzip.decompress(path.read_bytes())


async def test_redis_fill_writes_real_keys_and_deleting_by_pattern_clears_it(
    sandbox: Sandbox, http: aiohttp.ClientSession, redis_url: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.set("tradeops:test:survivor", "1")
        status, body = await inject(
            http, sandbox, "redis_fill", {"keys": 600, "value_bytes": 128, "target_ratio": None}
        )
        assert status == 201, body
        keys = [key async for key in client.scan_iter(match=f"{FILL_KEY_PREFIX}*", count=1000)]
        assert len(keys) >= 600
        await client.unlink(*keys)
        assert await active_faults(http, sandbox) == []
        assert await client.get("tradeops:test:survivor") == b"1"
    finally:
        await client.delete("tradeops:test:survivor")
        await client.aclose()


async def test_alert_delivery_failing_lowers_the_reported_success_rate(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    url = f"{sandbox.urls()['alert_system']}/api/alerts/recent?hours=24"
    await inject(http, sandbox, "alert_delivery_failing", {})
    async with http.get(url) as response:
        assert (await response.json())["delivery_success_rate"] < 0.95
    await clear_all(http, sandbox)
    async with http.get(url) as response:
        assert (await response.json())["delivery_success_rate"] >= 0.95


async def test_chaos_api_rejects_unknown_faults_and_malformed_bodies(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    chaos = sandbox.urls()["chaos"]
    async with http.post(f"{chaos}/meteor_strike", json={}) as response:
        assert response.status == 404
        assert "unknown fault" in (await response.json())["error"]
    async with http.post(f"{chaos}/service_down", data=b"{not json") as response:
        assert response.status == 400
    async with http.post(f"{chaos}/service_down", json=["service"]) as response:
        assert response.status == 400
    async with http.post(f"{chaos}/service_down", json={"service": "strategy", "extra": 1}) as response:
        assert response.status == 422
    async with http.post(f"{chaos}/service_down", json={"service": "../../etc"}) as response:
        assert response.status == 422
        assert "unknown service" in (await response.json())["error"]
    async with http.post(f"{chaos}/queue_buildup", json={"queue": "a b; rm -rf /"}) as response:
        assert response.status == 422
    async with http.post(f"{chaos}/service_down", data=b"x" * 100_000) as response:
        assert response.status == 413
    assert await active_faults(http, sandbox) == []


async def test_container_down_stops_the_real_container_and_a_restart_brings_the_service_back(
    postgres_dsn: str,
    redis_url: str,
    amqp_url: str,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    http: aiohttp.ClientSession,
) -> None:
    name = unique("tradeops-test-strategy")
    settings = sandbox_settings(
        postgres_dsn,
        redis_url,
        amqp_url,
        tmp_path,
        docker_host=DOCKER_HOST,
        containers={"strategy": name},
        image=TEST_IMAGE,
    )
    box = Sandbox(settings)
    await box.start()
    try:
        url = box.urls()["strategy"]
        assert docker_client.containers.get(name).status == "running"
        status, body = await inject(http, box, "container_down", {"service": "strategy"})
        assert status == 201, body
        assert docker_client.containers.get(name).status == "exited"
        await eventually(lambda: _is(health_status(http, url), None))
        assert await active_faults(http, box) == ["container_down:strategy"]
        docker_client.containers.get(name).restart(timeout=1)  # what docker_restart does
        await eventually(lambda: _is(health_status(http, url), 200))
        assert await active_faults(http, box) == []
    finally:
        await box.stop()
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)


@pytest.mark.parametrize("revives", [True, False], ids=["consumer-revives", "poison-message"])
async def test_queue_buildup_is_drained_after_a_restart_of_its_consumer_unless_a_poison_message_hangs_it_again(
    postgres_dsn: str,
    redis_url: str,
    amqp_url: str,
    tmp_path: Path,
    docker_client: docker.DockerClient,
    http: aiohttp.ClientSession,
    revives: bool,
) -> None:
    name = unique("tradeops-test-strategy")
    queue = "strategy_service.signals"  # the profile's queue of the strategy service, whose container is linked
    settings = sandbox_settings(
        postgres_dsn,
        redis_url,
        amqp_url,
        tmp_path,
        docker_host=DOCKER_HOST,
        containers={"strategy": name},
        image=TEST_IMAGE,
    )
    box = Sandbox(settings)
    await box.start()
    try:
        body = {"queue": queue, "messages": 1200, "consumer_revives": revives}
        status, answer = await inject(http, box, "queue_buildup", body)
        assert status == 201, answer
        assert (queue in box.ctx.state.hung_consumers) is revives
        docker_client.containers.get(name).restart(timeout=1)  # what docker_restart does
        await box.reconcile()  # what the sandbox's own loop does after a restart
        if revives:
            await eventually(lambda: _is(active_faults(http, box), []))
        else:
            assert queue not in box.ctx.state.draining
            assert await active_faults(http, box) == [f"queue_buildup:{queue}"]
    finally:
        await box.chaos.clear_all()
        await box.stop()


async def test_container_down_is_refused_for_a_service_without_container(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, body = await inject(http, sandbox, "container_down", {"service": "strategy"})
    assert status == 409
    assert "no container" in body["error"]


def test_sandbox_refuses_to_start_on_a_port_in_use(tmp_path: Path, postgres_dsn: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "sandbox.main",
                "--control-port",
                str(free_port()),
                "--port",
                f"market_data={port}",
                "--postgres-dsn",
                postgres_dsn,
                "--backup-root",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in result.stderr


@pytest.fixture
async def trademaster(postgres_dsn: str, redis_url: str, amqp_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running(sandbox_settings(postgres_dsn, redis_url, amqp_url, tmp_path, "trademaster")) as box:
        yield box


async def metric_lines(http: aiohttp.ClientSession, box: Sandbox, prefix: str) -> dict[str, float]:
    async with http.get(box.urls()["trading_service"] + "/actuator/prometheus") as response:
        text = await response.text()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    }


async def test_trademaster_breaker_opens_orders_fail_and_the_actuator_transition_closes_it(
    trademaster: Sandbox, http: aiohttp.ClientSession
) -> None:
    status, body = await inject(http, trademaster, "circuit_breaker_open", {"name": "brokerService"})
    assert status == 201, body
    assert (await inject(http, trademaster, "circuit_breaker_open", {"name": "noSuchBreaker"}))[0] == 422
    state = 'resilience4j_circuitbreaker_state{name="brokerService",state="open"}'
    assert (await metric_lines(http, trademaster, "resilience4j"))[state] == 1
    await eventually(lambda: _positive(metric_lines(http, trademaster, "orders_failed_total")))
    url = trademaster.urls()["trading_service"] + "/actuator/circuitbreakers/brokerService/transition/forceClosed"
    async with http.post(url) as response:
        assert response.status == 200
    assert await active_faults(http, trademaster) == []
    async with http.get(trademaster.urls()["trading_service"] + "/actuator/health") as response:
        assert (await response.json())["components"]["circuitBreakers"]["status"] == "UP"


async def test_trademaster_long_queries_fill_the_pool_until_the_real_cancel_action_runs(
    trademaster: Sandbox, http: aiohttp.ClientSession, postgres_dsn: str
) -> None:
    status, body = await inject(http, trademaster, "pg_long_queries", {"count": 10, "seconds": 300})
    assert status == 201, body
    await asyncio.sleep(1.2)  # older than the action's threshold below
    pool = await metric_lines(http, trademaster, "hikaricp_connections_")
    assert pool['hikaricp_connections_active{pool="HikariPool-1"}'] == 10
    base, _, database = postgres_dsn.rpartition("/")
    action = PostgresCancelQueriesAction(f"{base}/postgres")
    params = PostgresCancelParams(
        database=database,
        older_than_seconds=1,
        application_names=("trademaster-trading-service",),
        terminate_after_seconds=1,
        max_sessions=20,
    )
    result = await action.run(params, {})
    await action.close()
    assert result.changed
    await eventually(lambda: _is(active_faults(http, trademaster), []))
    pool = await metric_lines(http, trademaster, "hikaricp_connections_")
    assert pool['hikaricp_connections_active{pool="HikariPool-1"}'] == 0


async def _positive(pending: Any) -> bool:
    values = await pending
    return bool(values) and all(v > 0 for v in values.values())


@pytest.fixture
async def v11(postgres_dsn: str, redis_url: str, amqp_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running(sandbox_settings(postgres_dsn, redis_url, amqp_url, tmp_path, "ai-trading-v1.1")) as box:
        yield box


async def test_v11_rate_gate_backs_off_until_its_reset_endpoint_is_called(
    v11: Sandbox, http: aiohttp.ClientSession
) -> None:
    assert (await inject(http, v11, "rate_gate_exhausted", {}))[0] == 201
    gate = v11.urls()["rate_gate"]
    await eventually(lambda: _backoffs_at_least(http, gate, 2), attempts=50)
    async with http.post(f"{gate}/reset") as response:
        assert response.status == 200
    assert await active_faults(http, v11) == []


async def test_v11_losing_strategy_stops_when_auto_trading_is_disabled(
    v11: Sandbox, http: aiohttp.ClientSession
) -> None:
    engine = v11.urls()["trading_engine"]
    assert (await inject(http, v11, "losing_strategy", {}))[0] == 201
    async with http.get(f"{engine}/metrics") as response:
        assert "trading_sharpe_ratio -0.8" in await response.text()
    async with http.post(f"{engine}/api/trading/disable") as response:
        assert response.status == 200
    assert await active_faults(http, v11) == []
    async with http.get(f"{engine}/metrics") as response:
        assert "trading_sharpe_ratio 0.0" in await response.text()


async def test_v11_crash_loop_counts_pm2_restarts_in_the_stand_ins_process_list(
    v11: Sandbox, http: aiohttp.ClientSession
) -> None:
    assert (await inject(http, v11, "pm2_crash_loop", {"process": "no-such"}))[0] == 422
    assert (await inject(http, v11, "pm2_crash_loop", {"process": "trading-engine"}))[0] == 201
    jlist = v11.ctx.standin_dir / "pm2.json"
    await eventually(lambda: _restarts_at_least(jlist, 2), attempts=50)
    await clear_all(http, v11)


async def _backoffs_at_least(http: aiohttp.ClientSession, gate: str, count: int) -> bool:
    async with http.get(f"{gate}/status") as response:
        return bool((await response.json())["backoffs"] >= count)


async def _restarts_at_least(path: Path, count: int) -> bool:
    listed = json.loads(path.read_text())
    return any(p["name"] == "trading-engine" and p["pm2_env"]["restart_time"] >= count for p in listed)


@pytest.fixture
async def ai_trading(postgres_dsn: str, redis_url: str, amqp_url: str, tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with running(sandbox_settings(postgres_dsn, redis_url, amqp_url, tmp_path, "ai-trading")) as box:
        yield box


async def test_ai_trading_maintenance_health_reports_corruption_and_loss_and_takes_the_runbooks_commands(
    ai_trading: Sandbox, http: aiohttp.ClientSession
) -> None:
    maintenance = ai_trading.urls()["maintenance"]

    async def health() -> Any:
        async with http.get(f"{maintenance}/health") as response:
            return await response.json()

    assert (await health())["health_score"] == 100
    assert (await inject(http, ai_trading, "data_corruption", {}))[0] == 201
    assert (await inject(http, ai_trading, "large_loss", {}))[0] == 201
    body = await health()
    assert body["integrity"]["errors"] == 3
    assert body["pnl"]["daily_ratio"] == -0.08
    async with http.post(f"{maintenance}/maintenance/enter", json={"mode": "read_only"}) as response:
        assert response.status == 200
    async with http.post(f"{maintenance}/maintenance/enter", json={"mode": "chaos"}) as response:
        assert response.status == 422
    async with http.post(f"{maintenance}/emergency/halt") as response:
        assert response.status == 200
    body = await health()
    assert body["maintenance_mode"] == "read_only"
    assert body["trading_halted"] is True
    await clear_all(http, ai_trading)
    assert (await health())["integrity"]["errors"] == 0
