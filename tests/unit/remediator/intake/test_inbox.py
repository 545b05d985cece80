"""The inbox's stored bodies: large ones compressed, small ones and rows from before compression as they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediator.audit.sqlite import SqliteStore
from remediator.intake.inbox import COMPRESS_FROM_BYTES, LZ4_FRAME_MAGIC, pack, parse_stored, unpack
from tests.remediator_helpers import alert, payload


def body_of(alerts: int) -> bytes:
    return json.dumps(payload(*(alert(instance=f"i{n}") for n in range(alerts)))).encode()


def test_a_small_body_is_kept_as_it_came() -> None:
    small = body_of(1)
    assert len(small) < COMPRESS_FROM_BYTES
    assert pack(small) is small
    assert unpack(small) == small


def test_a_large_body_is_kept_smaller_and_comes_back_byte_for_byte() -> None:
    large = body_of(100)
    stored = pack(large)
    assert stored.startswith(LZ4_FRAME_MAGIC)
    assert len(stored) * 4 < len(large)
    assert unpack(stored) == large
    assert len(parse_stored(stored)["alerts"]) == 100


@pytest.mark.parametrize("start", [b"{", b" ", b"\t", b"\n", b"\r"])
def test_no_json_body_is_taken_for_a_compressed_one(start: bytes) -> None:
    # A body that validated is a JSON object: it opens with white space or a brace, never the frame's magic.
    raw = start + body_of(40).lstrip()
    assert unpack(raw) == raw


def test_a_damaged_frame_is_an_error_never_another_payload() -> None:
    stored = bytearray(pack(body_of(100)))
    stored[len(stored) // 2] ^= 0xFF
    with pytest.raises(RuntimeError):
        unpack(bytes(stored))


async def test_rows_written_before_compression_and_compressed_ones_both_resume(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "audit.sqlite3")
    old = body_of(40)  # above the threshold, written raw as the inbox did before
    old_id, _ = await store.receive(old, 40)
    new_id, _ = await store.receive(pack(body_of(60)), 60)
    await store.close()
    reopened = SqliteStore(tmp_path / "audit.sqlite3")
    pending = await reopened.pending()
    await reopened.close()
    assert [d.inbox_id for d, _ in pending] == [old_id] * 40 + [new_id] * 60
    assert [a.labels["instance"] for _, a in pending] == [f"i{n}" for n in range(40)] + [f"i{n}" for n in range(60)]
