"""The log formatters: real logfmt (ts, level, msg first) and JSON lines, one line per event whatever the values
hold, and no secret in either."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.logs import JsonFormatter, LogfmtFormatter, log_event, setup_logging

HOSTILE = {
    "space": "two words",
    "quote": 'say "hi"',
    "newline": "first\nsecond",
    "crlf": "a\r\nlevel=error msg=forged",
    "equals": "k=v",
    "unicode": "Zürich — 東京 🚀",
    "nul": "nul\x00byte",
    "backslash": "C:\\path\\n",
    "tab": "a\tb",
    "line_separator": "a\u2028b\x85c",
    "empty": "",
    "lone_surrogate": "bad\udc80",
}
RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def parse_logfmt(line: str) -> list[tuple[str, str]]:
    """Decode a logfmt line as go-logfmt (Loki's `| logfmt`) does: bare values up to a space, quoted values as
    JSON string literals. Raises AssertionError on anything it would not accept."""
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(line):
        equals = line.index("=", i)
        key = line[i:equals]
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", key), f"bad key {key!r} in {line!r}"
        i = equals + 1
        if i < len(line) and line[i] == '"':
            j = i + 1
            while line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            pairs.append((key, json.loads(line[i : j + 1])))
            i = j + 1
        else:
            j = line.find(" ", i)
            j = len(line) if j < 0 else j
            value = line[i:j]
            assert not set(value) & set('="'), f"bare value {value!r} in {line!r}"
            pairs.append((key, value))
            i = j
        if i < len(line):
            assert line[i] == " ", line
            i += 1
    return pairs


def record(event: str = "something_happened", with_exc: bool = False, **context: Any) -> logging.LogRecord:
    """A record as log_event makes it."""
    exc_info = None
    if with_exc:
        try:
            raise ValueError("boom\nsecond line of amqp://guest:hunter2@rabbit:5672/")
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord("tradeops.test", logging.WARNING, __file__, 1, event, None, exc_info)
    rec.context = context
    return rec


def test_logfmt_line_starts_with_ts_level_msg_and_every_pair_parses() -> None:
    line = LogfmtFormatter().format(record("probe_failed", probe="redis", target="cache"))
    pairs = parse_logfmt(line)
    assert [key for key, _ in pairs[:4]] == ["ts", "level", "msg", "logger"]
    assert RFC3339_MS.match(pairs[0][1]), pairs[0][1]
    assert dict(pairs) | {"ts": ""} == {
        "ts": "",
        "level": "warning",
        "msg": "probe_failed",
        "logger": "tradeops.test",
        "probe": "redis",
        "target": "cache",
    }


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_logfmt_keeps_a_hostile_value_on_one_line_and_it_parses_back(name: str) -> None:
    value = HOSTILE[name]
    line = LogfmtFormatter().format(record(value=value, after="x"))
    assert len(line.splitlines()) == 1, line
    assert "\x00" not in line
    pairs = dict(parse_logfmt(line))
    assert pairs["value"] == value
    assert pairs["after"] == "x"
    assert pairs["level"] == "warning"  # a forged `level=error` inside a value stays inside it


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_json_keeps_a_hostile_value_in_one_object_on_one_line(name: str) -> None:
    value = HOSTILE[name]
    line = JsonFormatter().format(record(value=value))
    assert not set(line) & {"\n", "\r"}
    document = json.loads(line)
    assert document["value"] == value
    assert list(document)[:4] == ["ts", "level", "msg", "logger"]
    assert RFC3339_MS.match(document["ts"])


@given(st.text(), st.text())
def test_any_text_as_value_or_message_round_trips_through_both_formats(value: str, message: str) -> None:
    rec = record(message, value=value)
    line = LogfmtFormatter().format(rec)
    assert len(line.splitlines()) == 1
    pairs = dict(parse_logfmt(line))
    assert pairs["value"] == value or "<secret>" in pairs["value"]
    document = json.loads(JsonFormatter().format(rec))
    assert document["value"] == pairs["value"]
    assert document["msg"] == pairs["msg"]


def test_values_that_are_not_text_are_rendered_plainly() -> None:
    pairs = dict(parse_logfmt(LogfmtFormatter().format(record(count=3, ok=True, missing=None, ratio=0.5))))
    assert (pairs["count"], pairs["ok"], pairs["missing"], pairs["ratio"]) == ("3", "true", "null", "0.5")
    document = json.loads(JsonFormatter().format(record(count=3, ok=True, missing=None, when=object)))
    assert (document["count"], document["ok"], document["missing"]) == (3, True, None)
    assert isinstance(document["when"], str)


def test_context_keys_never_replace_the_reserved_fields_and_are_made_safe() -> None:
    forged: dict[str, Any] = {"msg": "forged", "level": "error", "exc": "none", "bad key=x": "v"}
    rec = record("real_event", **forged)
    pairs = parse_logfmt(LogfmtFormatter().format(rec))
    assert pairs[1:3] == [("level", "warning"), ("msg", "real_event")]
    assert ("msg_", "forged") in pairs
    assert ("level_", "error") in pairs
    assert ("exc_", "none") in pairs
    assert ("bad_key_x", "v") in pairs
    assert [key for key, _ in pairs].count("msg") == 1


def test_an_exception_stays_on_the_line_of_its_event() -> None:
    line = LogfmtFormatter().format(record(with_exc=True))
    assert len(line.splitlines()) == 1
    assert "ValueError: boom\nsecond line" in dict(parse_logfmt(line))["exc"]
    assert "boom\nsecond line" in json.loads(JsonFormatter().format(record(with_exc=True)))["exc"]


SECRETS: dict[str, Any] = {
    "token": "s3cr3t-token",
    "webhook_token": "s3cr3t-token",
    "password": "hunter2",
    "authorization": "Bearer s3cr3t-token",
    "api_key": "k-123",
    "error": "Connect call failed amqp://guest:hunter2@rabbit:5672/ and https://u:hunter2@pager/x?token=s3cr3t-token",
    "url": "https://hooks.example/x?a=1&access_token=s3cr3t-token",
}


def lines_of(*records: logging.LogRecord) -> Iterator[str]:
    """Every record in both formats."""
    for rec in records:
        yield LogfmtFormatter().format(rec)
        yield JsonFormatter().format(rec)


def test_secrets_never_reach_a_line_in_either_format() -> None:
    rec = record("escalation_attempt_failed", **SECRETS)
    failing = record("amqp://guest:hunter2@rabbit:5672/ unreachable", with_exc=True)
    for line in lines_of(rec, failing):
        assert "hunter2" not in line, line
        assert "s3cr3t-token" not in line, line
        assert "k-123" not in line, line
    pairs = dict(parse_logfmt(LogfmtFormatter().format(rec)))
    assert pairs["token"] == "<secret>"
    assert "amqp://guest:<secret>@rabbit:5672/" in pairs["error"]
    assert pairs["url"] == "https://hooks.example/x?a=1&access_token=<secret>"


def test_setup_logging_writes_the_chosen_format_to_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        for fmt in ("logfmt", "json"):
            stream = io.StringIO()
            monkeypatch.setattr("sys.stderr", stream)
            setup_logging("info", fmt)
            log_event(logging.getLogger("tradeops.test"), logging.INFO, "hello", who="a b")
            logging.getLogger("tradeops.test").debug("not at info")
            (line,) = stream.getvalue().splitlines()
            parsed = json.loads(line) if fmt == "json" else dict(parse_logfmt(line))
            assert (parsed["msg"], parsed["who"]) == ("hello", "a b")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


@pytest.mark.parametrize(("level", "fmt"), [("info", "xml"), ("verbose", "json"), ("info", "LOGFMT")])
def test_setup_logging_refuses_an_unknown_level_or_format(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="not one of"):
        setup_logging(level, fmt)
