"""A WebSocket endpoint's health (seed 004, WebSocket Connection Issues: `wscat -c ws://localhost:8000/ws/market`):
the handshake, and optionally a first message after an optional subscription."""

from __future__ import annotations

import time

import aiohttp

from common.http_auth import HttpAuthError
from exporter.config import WebSocketConfig
from exporter.probes.base import Probe, ProbeError
from exporter.sink import MetricSink

CLOSE_TIMEOUT_SECONDS = 0.5  # waiting for the server's close frame; a server that never answers it is cut off
UP_HELP = "1 when the WebSocket endpoint accepted a connection (and sent a first message, when one is expected)."


class WebSocketProbe(Probe):
    """Connects (never reconnecting in the background), sends `send` if given, waits for one message if
    `expect_message`, then closes."""

    kind = "websocket"

    def __init__(self, config: WebSocketConfig, session: aiohttp.ClientSession) -> None:
        super().__init__(config.name, config.timeout_seconds)
        self.config = config
        self.session = session

    async def collect(self, sink: MetricSink) -> None:
        url = str(self.config.url)
        try:
            headers = self.config.auth.headers() if self.config.auth is not None else None
        except HttpAuthError as error:
            raise ProbeError("auth", str(error)) from None
        started = time.perf_counter()
        try:
            ws = await self.session.ws_connect(
                url,
                headers=headers,
                max_msg_size=self.config.max_message_bytes,
                autoclose=True,
                autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT_SECONDS),
            )
        except aiohttp.WSServerHandshakeError as error:
            raise ProbeError("handshake", f"{url}: no WebSocket upgrade (HTTP {error.status})") from error
        except aiohttp.ClientConnectionError as error:
            raise ProbeError("connection", f"{url}: {error}") from error
        except aiohttp.ClientError as error:
            raise ProbeError("protocol", f"{url}: {error}") from error
        connected = time.perf_counter() - started
        first_message: float | None = None
        try:
            if self.config.send is not None:
                await ws.send_str(self.config.send)
            if self.config.expect_message:
                await self._first_message(ws, url)
                first_message = time.perf_counter() - started
        finally:
            await ws.close()
        labels = {"endpoint": self.target}
        sink.gauge("tradeops_websocket_up", UP_HELP, labels, 1)
        sink.gauge("tradeops_websocket_connect_seconds", "Time the WebSocket handshake took.", labels, connected)
        if first_message is not None:
            sink.gauge(
                "tradeops_websocket_first_message_seconds",
                "Time from connecting to the first message the endpoint sent.",
                labels,
                first_message,
            )

    async def _first_message(self, ws: aiohttp.ClientWebSocketResponse, url: str) -> None:
        message = await ws.receive()
        if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            return
        if message.type is aiohttp.WSMsgType.ERROR:
            error = message.data
            if isinstance(error, aiohttp.WebSocketError) and error.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                raise ProbeError("too_large", f"{url}: first message larger than {self.config.max_message_bytes} bytes")
            raise ProbeError("protocol", f"{url}: {error}")
        raise ProbeError("closed", f"{url}: closed before sending a message ({message.type.name})")

    def on_failure(self, sink: MetricSink) -> None:
        sink.gauge("tradeops_websocket_up", UP_HELP, {"endpoint": self.target}, 0)
