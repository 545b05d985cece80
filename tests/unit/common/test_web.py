"""The aiohttp helpers both services use: a body read stops one byte past its limit however it arrives, a taken
port is a PortInUseError naming the address, and free ports lie below the ephemeral range."""

from __future__ import annotations

import asyncio
import json
import socket
from unittest import mock

import pytest
from aiohttp import StreamReader, web
from prometheus_client import CollectorRegistry, Counter

from common.web import (
    PortInUseError,
    ephemeral_range,
    free_port,
    free_ports,
    healthy,
    json_error,
    metrics_response,
    read_limited,
    start_site,
)


def stream(*chunks: bytes) -> StreamReader:
    reader = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return reader


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ((), b""),
        ((b"abc",), b"abc"),
        ((b"abcd",), b"abcd"),  # exactly the limit
        ((b"a", b"b", b"c", b"d"), b"abcd"),
        ((b"abcde",), b"abcde"),  # one past: detected
        ((b"ab", b"cdefgh", b"ijk"), b"abcde"),  # never more than one past
        ((b"x" * 100_000,), b"xxxxx"),
    ],
)
async def test_a_body_is_read_up_to_one_byte_past_its_limit(chunks: tuple[bytes, ...], expected: bytes) -> None:
    assert await read_limited(stream(*chunks), 4) == expected


async def test_health_answers_200() -> None:
    response = await healthy(mock.Mock())
    assert (response.status, response.text) == (200, "Healthy.\n")


def test_metrics_are_rendered_in_the_text_format() -> None:
    registry = CollectorRegistry()
    Counter("tradeops_test_things", "Things.", registry=registry).inc(2)
    response = metrics_response(registry)
    assert response.content_type == "text/plain"
    assert isinstance(response.body, bytes)
    assert b"tradeops_test_things_total 2.0" in response.body


def test_a_json_error_carries_its_message_and_extra_fields() -> None:
    response = json_error(422, "bad", details=["a"])
    assert response.status == 422
    assert isinstance(response.body, bytes)
    assert json.loads(response.body) == {"error": "bad", "details": ["a"]}


async def test_a_port_another_process_holds_is_a_port_in_use_error_naming_the_address() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        runner = web.AppRunner(web.Application())
        await runner.setup()
        try:
            with pytest.raises(PortInUseError, match=f"127.0.0.1:{port} is already in use"):
                await start_site(runner, "127.0.0.1", port)
        finally:
            await runner.cleanup()


async def test_an_address_that_cannot_be_bound_for_another_reason_is_not_called_in_use() -> None:
    runner = web.AppRunner(web.Application())
    await runner.setup()
    try:
        with pytest.raises(OSError, match="requested address") as caught:
            await start_site(runner, "192.0.2.1", free_port())  # TEST-NET-1: not an address of this host
        assert not isinstance(caught.value, PortInUseError)
    finally:
        await runner.cleanup()


async def test_a_free_port_can_be_served_on() -> None:
    runner = web.AppRunner(web.Application())
    await runner.setup()
    try:
        port = free_port()
        site = await start_site(runner, "127.0.0.1", port)
        assert site.name.endswith(f":{port}")
    finally:
        await runner.cleanup()


def test_free_ports_are_distinct_and_below_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    assert 1024 <= low < high
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(max(1024, low - 12000) <= port < low for port in ports)


def test_the_ephemeral_range_falls_back_to_linux_defaults_when_unreadable() -> None:
    with mock.patch("common.web.Path.read_text", side_effect=OSError("no /proc")):
        assert ephemeral_range() == (32768, 60999)
    with mock.patch("common.web.Path.read_text", return_value="garbage"):
        assert ephemeral_range() == (32768, 60999)
