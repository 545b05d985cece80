"""Scrubbing secrets out of evidence and error texts before they reach the audit or a page, and bounding them."""

from __future__ import annotations

import re

MASK = "***"

# Order matters: a whole Authorization header goes first (it may hold Basic credentials), then bearer tokens,
# URL userinfo (DSNs like postgresql://user:secret@host), key=value and key: value secrets (libpq DSNs, JSON,
# query strings), and SQL's PASSWORD 'literal'.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*)[^\r\n]*"), rf"\g<1>{MASK}"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), f"Bearer {MASK}"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]*@"), rf"\g<1>{MASK}@"),
    (
        re.compile(
            r"(?i)([\"']?\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|"
            r"client[_-]?secret|sslpassword)[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&}\]]+)"
        ),
        rf"\g<1>{MASK}",
    ),
    (re.compile(r"(?i)(\bpassword\s+)('[^']*'|\"[^\"]*\")"), rf"\g<1>{MASK}"),
)


def scrub(text: str) -> str:
    """The text with URL userinfo, Authorization headers, bearer tokens, password/secret/token values (DSNs,
    JSON, query strings) and SQL password literals masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def cut_at_whitespace(text: str) -> str:
    """Drop a trailing run of non-space characters: a text cut mid-way may end in part of a secret that no pattern
    would recognise any more (`https://user:pa`), so the incomplete last word goes."""
    match = re.search(r"\s\S*\Z", text)
    return text[: match.start()] if match else ""


def bounded(text: str, max_bytes: int, cut: bool = False) -> str:
    """The text scrubbed and at most `max_bytes` of UTF-8, saying so when it was cut; `cut` says it was already cut
    short where it was read (its incomplete last word is dropped before scrubbing)."""
    if cut:
        text = cut_at_whitespace(text)
    text = scrub(text)
    encoded = text.encode()
    if len(encoded) <= max_bytes and not cut:
        return text
    marker = " … (truncated)"
    room = max(0, max_bytes - len(marker.encode()))
    return encoded[:room].decode(errors="ignore") + marker
