"""Structured logs, one line per event: logfmt (`ts=... level=... msg=<event> key=value ...`) or one JSON object.

Both formats carry the same fields: `ts` (RFC 3339, UTC, milliseconds), `level`, `msg` (the event name),
`logger`, then the event's context. A value is never allowed to break its line or hide a secret: newlines and
other control characters are escaped, a key that names a secret (token, password, ...) has its value replaced by
`<secret>`, and so has the password in a URL's user info (`amqp://user:<secret>@host/`) anywhere in a value.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

FORMATS = ("logfmt", "json")
LEVELS = ("debug", "info", "warning", "error")
REDACTED = "<secret>"
RESERVED = ("ts", "level", "msg", "logger", "exc")
_SECRET_KEY = re.compile(r"(?i)(token|password|passwd|secret|authorization|api_?key|cookie|credential)")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:]*):[^\s/?#@]*@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:token|access_token|api_key|apikey|password|secret)=)[^&\s#\"']*")
_KEY_CHAR = re.compile(r"[^A-Za-z0-9_.-]")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def scrub(text: str) -> str:
    """Return the text with passwords in URLs' user info and secret query parameters replaced by <secret>."""
    return _QUERY_SECRET.sub(rf"\1{REDACTED}", _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text))


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> Iterator[tuple[str, Any]]:
    """Yield the record's fields in order, reserved ones first; context keys are made safe and unique."""
    created = dt.datetime.fromtimestamp(record.created, dt.UTC)
    yield "ts", created.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    yield "level", record.levelname.lower()
    yield "msg", scrub(record.getMessage())
    yield "logger", record.name
    context: dict[str, Any] = getattr(record, "context", {})
    for raw_key, value in context.items():
        key = _KEY_CHAR.sub("_", str(raw_key)) or "_"
        if key in RESERVED:
            key += "_"
        if _SECRET_KEY.search(key):
            yield key, REDACTED
        elif isinstance(value, str):
            yield key, scrub(value)
        else:
            yield key, value
    if record.exc_info:
        yield "exc", scrub(formatter.formatException(record.exc_info))


def _quote(text: str) -> str:
    """Return the text as a double-quoted string that is also a valid JSON string literal."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:  # JSON's \u escapes (a surrogate pair above U+FFFF), which logfmt parsers (go-logfmt) decode
            units = ch.encode("utf-16-be", "surrogatepass")
            out.extend(f"\\u{int.from_bytes(units[i : i + 2]):04x}" for i in range(0, len(units), 2))
    out.append('"')
    return "".join(out)


def logfmt_value(value: Any) -> str:
    """Render one value for logfmt: bare when it can be, else a quoted JSON string literal (go-logfmt decodes it)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text and text.isprintable() and not any(ch in text for ch in ' ="\\'):
        return text
    return _quote(text)


class LogfmtFormatter(logging.Formatter):
    """Formats a record as one logfmt line: `ts=... level=... msg=... logger=... key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line; no value can add a line break."""
        return " ".join(f"{key}={logfmt_value(value)}" for key, value in _fields(record, self))


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line, with the same fields as logfmt."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one JSON object; values JSON cannot hold are written as their text."""
        return json.dumps(dict(_fields(record, self)), ensure_ascii=False, default=str, separators=(",", ":"))


def log_event(logger: logging.Logger, level: int, event: str, **context: Any) -> None:
    """Log one event name with its context as key=value pairs."""
    logger.log(level, event, extra={"context": context})


def check_log_flags(level: str, fmt: str) -> None:
    """Raise ValueError unless the level is debug, info, warning or error and the format logfmt or json."""
    if level.lower() not in LEVELS:
        raise ValueError(f"--log.level {level!r} is not one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"--log.format {fmt!r} is not one of {', '.join(FORMATS)}")


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    """Send logs to stderr at the given level (debug, info, warning, error) in the given format (logfmt,
    json); raise ValueError on any other level or format."""
    check_log_flags(level, fmt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
