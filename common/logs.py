"""Structured logs: a short event name followed by key=value context, one line per event."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any


class KeyValueFormatter(logging.Formatter):
    """Formats records as `ts level logger event key=value ...` with values JSON-quoted when needed."""

    def format(self, record: logging.LogRecord) -> str:
        context: dict[str, Any] = getattr(record, "context", {})
        parts = [
            self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"event={record.getMessage()}",
        ]
        for key, value in context.items():
            parts.append(f"{key}={_render(value)}")
        if record.exc_info:
            parts.append(f"exc={json.dumps(self.formatException(record.exc_info))}")
        return " ".join(parts)


def _render(value: Any) -> str:
    text = str(value)
    if text and all(ch.isalnum() or ch in "._-:/@" for ch in text):
        return text
    return json.dumps(text)


def log_event(logger: logging.Logger, level: int, event: str, **context: Any) -> None:
    """Log one event name with its context as key=value pairs."""
    logger.log(level, event, extra={"context": context})


def setup_logging(level: str = "info") -> None:
    """Send key=value logs to stderr at the given level (debug, info, warning, error)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
