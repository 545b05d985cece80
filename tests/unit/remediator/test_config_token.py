"""The webhook token: an empty or blank one (inline, in its file or in TRADEOPS_WEBHOOK_TOKEN) is a located
config error, never "no token"."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from common.config import ConfigError
from remediator.config import load


def write(tmp_path: Path, **data: object) -> Path:
    path = tmp_path / "remediator.yml"
    path.write_text(yaml.safe_dump({"audit_path": str(tmp_path / "a.db"), **data}))
    return path


def locations(error: ConfigError) -> list[str]:
    return [detail.location for detail in error.details]


@pytest.mark.parametrize("content", ["", "\n", "  \t\n"])
def test_an_empty_or_blank_token_file_is_a_located_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    monkeypatch.delenv("TRADEOPS_WEBHOOK_TOKEN", raising=False)
    token = tmp_path / "token"
    token.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, webhook_token_file=str(token)))
    assert locations(caught.value) == ["webhook_token_file"]
    assert "empty" in caught.value.render()


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_or_blank_inline_token_is_a_located_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.delenv("TRADEOPS_WEBHOOK_TOKEN", raising=False)
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, webhook_token=value))
    assert locations(caught.value) == ["webhook_token"]


@pytest.mark.parametrize("value", ["", " ", "\n"])
def test_an_empty_or_blank_token_in_the_environment_is_a_located_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TRADEOPS_WEBHOOK_TOKEN", value)
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, webhook_token="in-the-file"))
    assert locations(caught.value) == ["env TRADEOPS_WEBHOOK_TOKEN"]


def test_a_token_file_loses_its_trailing_newline_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADEOPS_WEBHOOK_TOKEN", raising=False)
    token = tmp_path / "token"
    token.write_text("from-file\n")
    config = load(write(tmp_path, webhook_token_file=str(token)))
    assert config.token() == "from-file"
    monkeypatch.setenv("TRADEOPS_WEBHOOK_TOKEN", "from-env")
    assert config.token() == "from-env"
