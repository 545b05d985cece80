"""The inbox: payloads are recorded as they arrive (large ones compressed), and each alert in them is marked
when done.

A payload of more than one SQLite page is kept as an LZ4 frame: 100 alerts are 19 KB of JSON and 2.7 KB
compressed, in 5 µs, so the record before the 2xx writes one page to the log instead of five, the checkpoint
copies one, and the work queue holds a seventh of the memory (measured in docs/benchmarks.md). The frame's
magic number tells a compressed body from a JSON one, which starts with `{` or white space, so rows written
before compression are read as they are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable

import lz4.frame

from remediator.intake.payload import PayloadDocument, WebhookAlert, parse_payload
from remediator.state.base import Delivery

COMPRESS_FROM_BYTES = 4096  # below one page, compressing saves no write
LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"


def pack(body: bytes) -> bytes:
    """Return what the inbox keeps for a received body: an LZ4 frame (with a checksum) for large bodies."""
    if len(body) < COMPRESS_FROM_BYTES:
        return body
    return bytes(lz4.frame.compress(body, content_checksum=True))


def unpack(stored: bytes) -> bytes:
    """Return the body as it was received from what `pack` made of it (or from a row written before it)."""
    if stored[:4] == LZ4_FRAME_MAGIC:
        return bytes(lz4.frame.decompress(stored))
    return stored


def parse_stored(stored: bytes) -> PayloadDocument:
    """Validate a body the inbox kept (it was valid when received)."""
    return parse_payload(unpack(stored))


def unfinished(
    payloads: Iterable[tuple[int, dt.datetime, bytes]], finished: Collection[tuple[int, int]]
) -> list[tuple[Delivery, WebhookAlert]]:
    """Return the alerts of the recorded payloads that are not marked done, in arrival order."""
    resumed = []
    for inbox_id, received_at, stored in payloads:
        for index, document in enumerate(parse_stored(stored)["alerts"]):
            if (inbox_id, index) not in finished:
                resumed.append((Delivery(inbox_id, index, received_at), WebhookAlert.from_document(document)))
    return resumed
