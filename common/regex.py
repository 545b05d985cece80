"""RE2 regular expressions behind a small typed interface: linear-time matching and the syntax of Go's regexp,
which Prometheus and Alertmanager use (no lookaround, no backreferences)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information


class RegexError(ValueError):
    """A pattern RE2 refuses; the message says why."""


@dataclass(frozen=True)
class Regex:
    """One compiled RE2 pattern."""

    pattern: str
    compiled: Any

    def search(self, text: str) -> bool:
        """Return whether the pattern matches anywhere in the text."""
        return self.compiled.search(text) is not None

    def fullmatch(self, text: str) -> bool:
        """Return whether the pattern matches the whole text."""
        return self.compiled.fullmatch(text) is not None


def compile_re2(pattern: str) -> Regex:
    """Compile a pattern with RE2 (UTF-8), raising RegexError with RE2's reason when it refuses it."""
    options = re2.Options()
    options.log_errors = False  # the reason goes into the exception, not to stderr
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0] if error.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", errors="replace")
        raise RegexError(str(reason)) from None
    return Regex(pattern, compiled)
