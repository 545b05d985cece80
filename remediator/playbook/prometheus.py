"""The Prometheus query client of playbooks (`when` and `verify` conditions, PromQL evidence), and the filling and
parse check of PromQL templates whose placeholders take allowlisted label values.

A condition fails closed: only an answered query whose result is a non-empty vector, or a scalar other than 0,
holds. A backend problem (refused, timed out, redirected, not 200, not JSON, `status: error`, too large) and an
ambiguous result (a matrix, a string, a NaN scalar) are `ok=False, holds=False`, with the reason recorded.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import promql_parser

from common.http import SharedSession
from remediator.playbook.scrub import scrub

SERIES_SHOWN = 5
SEEN_LIMIT = 500
ERROR_LIMIT = 300
LABEL_VALUE_LIMIT = 60

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class QueryResult:
    """What one instant query came to: whether it was answered (`ok`), whether its condition holds, a short text
    of what it returned (`seen`) and, when not ok, why (`error`)."""

    ok: bool
    holds: bool
    seen: str
    error: str = ""


def _failed(error: str) -> QueryResult:
    return QueryResult(ok=False, holds=False, seen="", error=_bounded(scrub(error), ERROR_LIMIT))


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(value: str) -> str:
    """The value as the body of a double-quoted PromQL string: backslash, quote and control characters escaped."""
    out: list[str] = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def _double_quoted_spans(template: str) -> list[tuple[int, int]]:
    """The [start, end) offsets of the bodies of the template's double-quoted strings (PromQL lexing: single-quoted
    and backtick strings and `#` comments are skipped, so a quote inside them opens nothing)."""
    spans: list[tuple[int, int]] = []
    index, length = 0, len(template)
    while index < length:
        char = template[index]
        if char == "#":
            newline = template.find("\n", index)
            index = length if newline < 0 else newline + 1
        elif char in "\"'":
            start = index + 1
            index = start
            while index < length and template[index] != char:
                index += 2 if template[index] == "\\" else 1
            if char == '"':
                spans.append((start, min(index, length)))
            index += 1
        elif char == "`":
            close = template.find("`", index + 1)
            index = length if close < 0 else close + 1
        else:
            index += 1
    return spans


def fill_promql(template: str, bound: Mapping[str, str]) -> str:
    """Replace each `{name}` placeholder by its bound (allowlisted) value, escaped for the inside of a double-quoted
    PromQL string; ValueError naming a placeholder that nothing binds, or one outside a double-quoted string
    (where no escaping could keep a hostile value from changing the query)."""
    spans = _double_quoted_spans(template)

    def inside_string(position: int) -> bool:
        return any(start <= position < end for start, end in spans)

    def replaced(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in bound:
            raise ValueError(f"placeholder {{{name}}} is not bound by any label parameter")
        if not inside_string(match.start()):
            raise ValueError(f'placeholder {{{name}}} must be inside a double-quoted string, like label="{{{name}}}"')
        return _escape(bound[name])

    return PLACEHOLDER.sub(replaced, template)


def check_promql(expr: str) -> str | None:
    """The parse error of a PromQL expression (its placeholders filled with a dummy value first), or None when it
    parses."""
    try:
        filled = fill_promql(expr, dict.fromkeys(PLACEHOLDER.findall(expr), "x"))
    except ValueError as error:
        return str(error)
    try:
        promql_parser.parse(filled)
    except ValueError as error:
        return str(error) or "does not parse"
    return None


def _labels(metric: Any) -> str:
    if not isinstance(metric, dict):
        return "{}"
    name = metric.get("__name__", "")
    pairs = ", ".join(
        f'{key}="{_bounded(_escape(str(value)), LABEL_VALUE_LIMIT)}"'
        for key, value in sorted(metric.items())
        if key != "__name__"
    )
    return f"{name}{{{pairs}}}"


def _sample_value(sample: Any) -> str:
    """The value of a `[timestamp, "value"]` pair; ValueError when it is not one."""
    if not isinstance(sample, list) or len(sample) != 2 or not isinstance(sample[1], str):
        raise ValueError(f"not a [time, value] sample: {str(sample)[:80]}")
    float(sample[1])  # raises ValueError when it is not a number
    return sample[1]


def interpret(body: Any) -> QueryResult:
    """The verdict of a decoded `/api/v1/query` answer (fails closed on anything but a clear answer)."""
    if not isinstance(body, dict):
        return _failed("answer is not a JSON object")
    if body.get("status") != "success":
        return _failed(f"query failed: {body.get('errorType', 'error')}: {body.get('error', 'no reason given')}")
    data = body.get("data")
    if not isinstance(data, dict):
        return _failed("answer has no data")
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "vector" and isinstance(result, list):
            if not result:
                return QueryResult(ok=True, holds=False, seen="empty vector")
            lines = [
                f"{_labels(item.get('metric'))} {_sample_value(item.get('value'))}"
                for item in result[:SERIES_SHOWN]
                if isinstance(item, dict)
            ]
            if len(result) > SERIES_SHOWN:
                lines.append(f"... and {len(result) - SERIES_SHOWN} more")
            return QueryResult(ok=True, holds=True, seen=_bounded("; ".join(lines), SEEN_LIMIT))
        if kind == "scalar":
            value = _sample_value(result)
            if math.isnan(float(value)):
                return QueryResult(ok=False, holds=False, seen=f"scalar {value}", error="ambiguous: scalar is NaN")
            return QueryResult(ok=True, holds=float(value) != 0, seen=f"scalar {value}")
    except ValueError as error:
        return _failed(f"malformed {kind} result: {error}")
    if kind in ("matrix", "string"):
        return QueryResult(
            ok=False, holds=False, seen=f"{kind} result", error=f"ambiguous: a {kind} result is not a condition"
        )
    return _failed(f"unknown result type {str(kind)[:40]!r}")


class PrometheusClient:
    """Instant queries against one Prometheus query API: each bounded in time (`timeout_seconds`, connect to last
    byte) and in bytes read (`max_bytes`), no redirect followed, never raising for a backend problem."""

    def __init__(
        self,
        base_url: str,
        http: SharedSession,
        timeout_seconds: float = 5.0,
        max_bytes: int = 1_000_000,
        bearer_token: str | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/api/v1/query"
        self.http = http
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes
        self._headers = {"Accept": "application/json"}
        if bearer_token:
            self._headers["Authorization"] = f"Bearer {bearer_token}"

    async def query(self, expr: str) -> QueryResult:
        """The verdict of one instant query; a failed, timed-out, refused, redirected, non-200, non-JSON,
        `status: error` or oversized answer is ok=False, holds=False with the reason in `error`."""
        try:
            status, body = await self._fetch(expr)
        except TimeoutError:
            return _failed(f"timed out after {self.timeout_seconds:g}s")
        except (aiohttp.ClientError, OSError, RuntimeError) as error:
            return _failed(f"query failed: {type(error).__name__}: {error}")
        except _TooLargeError:
            return _failed(f"answer larger than {self.max_bytes} bytes")
        if 300 <= status < 400:
            return _failed(f"answered {status} (a redirect; not followed)")
        if status != 200 and status not in (400, 422, 503):
            return _failed(f"answered HTTP {status}: {body[:120].decode(errors='replace')}")
        try:
            decoded = json.loads(body)
        except ValueError:
            return _failed(f"answered HTTP {status} with a body that is not JSON: {body[:80].decode(errors='replace')}")
        result = interpret(decoded)
        if status != 200 and result.ok:  # Prometheus answers errors with 400/422/503 and a JSON body
            return _failed(f"answered HTTP {status}")
        return result

    async def _fetch(self, expr: str) -> tuple[int, bytes]:
        session = self.http.get()
        async with session.get(
            self.url,
            params={"query": expr},
            headers=self._headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
        ) as response:
            if response.content_length is not None and response.content_length > self.max_bytes:
                raise _TooLargeError
            chunks: list[bytes] = []
            size = 0
            while size <= self.max_bytes:
                chunk = await response.content.read(self.max_bytes + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > self.max_bytes:
                raise _TooLargeError
            return response.status, b"".join(chunks)


class _TooLargeError(Exception):
    """The answer is larger than the client reads."""
