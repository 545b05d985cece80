"""Secrets read from config fields or files: a trailing newline is dropped, an empty or blank secret is an error."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from common.config import read_secret_file, required_secret, secret_from_fields


def test_a_secret_file_loses_only_its_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(" two words \r\n")
    assert read_secret_file(path) == " two words "


@pytest.mark.parametrize("content", ["", "\n", "\r\n", "   ", " \t \n"])
def test_an_empty_or_blank_secret_file_is_an_error_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "secret"
    path.write_text(content)
    with pytest.raises(ValueError, match="empty") as caught:
        read_secret_file(path)
    assert str(path) in str(caught.value)
    with pytest.raises(ValueError, match="empty"):
        secret_from_fields(None, path, "token")
    with pytest.raises(ValueError, match="empty"):
        required_secret(None, path, "token")


@pytest.mark.parametrize("value", ["", " ", "\n\t"])
def test_an_empty_or_blank_inline_secret_is_an_error_naming_the_field(value: str) -> None:
    with pytest.raises(ValueError, match="token is empty"):
        secret_from_fields(value, None, "token")
    with pytest.raises(ValueError, match="token is empty"):
        required_secret(SecretStr(value), None, "token")


def test_an_absent_optional_secret_is_none() -> None:
    assert secret_from_fields(None, None, "token") is None
