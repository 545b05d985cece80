"""state: memory's file: one that cannot be opened (a directory, not a database, a parent that is a file) is a
StateUnavailableError at open and at ping, so the remediator fails closed; a missing directory is created."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from remediator.state.base import IncidentStore, StateUnavailableError
from remediator.state.memory import MemoryState

NO_INCIDENTS = cast(IncidentStore, object())  # opening the state file never reads incidents


def unusable(tmp_path: Path, kind: str) -> Path:
    if kind == "directory":
        (tmp_path / "state").mkdir()
        return tmp_path / "state"
    if kind == "not a database":
        (tmp_path / "state").write_bytes(b"this is not SQLite" * 100)
        return tmp_path / "state"
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "state.sqlite3"  # its parent is a file


@pytest.mark.parametrize("kind", ["directory", "not a database", "parent is a file"])
async def test_a_state_file_that_cannot_be_opened_fails_closed(tmp_path: Path, kind: str) -> None:
    path = unusable(tmp_path, kind)
    state = MemoryState(NO_INCIDENTS, path)
    with pytest.raises(StateUnavailableError, match=f"state file {path} unavailable"):
        await state.open()
    with pytest.raises(StateUnavailableError):
        await state.ping()


async def test_a_missing_directory_is_created_and_the_file_opened(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.sqlite3"
    state = MemoryState(NO_INCIDENTS, path)
    await state.open()
    await state.ping()
    assert path.is_file()
    await state.close()
