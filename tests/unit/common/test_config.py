"""Loading YAML configuration: every failure (unreadable, not UTF-8, invalid YAML, not a mapping, invalid values)
is a ConfigError whose problems say where they are; valid files give frozen models that refuse unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from common.config import ConfigError, ConfigErrorDetail, StrictModel, load_config, parse_config


class Inner(StrictModel):
    port: int = 1


class Model(StrictModel):
    name: str = "x"
    inner: Inner = Inner()
    items: tuple[Inner, ...] = ()


def load_problems(tmp_path: Path, text: str | bytes) -> tuple[str, list[str]]:
    path = tmp_path / "c.yml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(Model, path)
    return caught.value.source, [str(detail) for detail in caught.value.details]


def test_a_valid_file_loads_into_a_frozen_model(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("name: a\ninner: {port: 9}\n")
    model = load_config(Model, path)
    assert (model.name, model.inner.port) == ("a", 9)
    with pytest.raises(ValidationError):
        model.name = "b"  # type: ignore[misc]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_file_is_every_default(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yml"
    path.write_text(text)
    assert load_config(Model, path) == Model()


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(Model, tmp_path / "absent.yml")
    assert caught.value.source == str(tmp_path / "absent.yml")
    assert str(caught.value.details[0]).startswith("cannot read file: ")


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(Model, tmp_path)


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    _, details = load_problems(tmp_path, b"name: \xff\xfe\n")
    assert details[0].startswith("cannot read file: ")


def test_invalid_yaml_says_the_line_and_column(tmp_path: Path) -> None:
    _, details = load_problems(tmp_path, "name: a\ninner: {port: 9\n")
    assert len(details) == 1
    assert details[0].startswith("line 3, column 1: invalid YAML: ")


def test_yaml_with_tabs_is_invalid_with_a_location(tmp_path: Path) -> None:
    _, details = load_problems(tmp_path, "inner:\n\tport: 9\n")
    assert details[0].startswith("line 2, column 1: invalid YAML: ")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_a_top_level_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    assert load_problems(tmp_path, text)[1] == ["the top level must be a mapping"]


def test_every_invalid_value_and_unknown_key_is_located(tmp_path: Path) -> None:
    source, details = load_problems(tmp_path, "name: [1]\ninner: {port: x}\nitems: [{}, {port: y}]\nextra: 1\n")
    assert source == str(tmp_path / "c.yml")
    assert [detail.split(":")[0] for detail in details] == ["name", "inner.port", "items[1].port", "extra"]
    assert details[-1] == "extra: Extra inputs are not permitted"


def test_the_error_message_has_one_line_per_problem_each_prefixed_by_its_file() -> None:
    error = ConfigError("f.yml", [ConfigErrorDetail("a.b", "bad"), ConfigErrorDetail("", "top")])
    assert str(error) == "f.yml: a.b: bad\nf.yml: top"
    assert error.render() == str(error)


def test_parse_config_validates_already_parsed_data_and_names_its_source() -> None:
    assert parse_config(Model, None, "env") == Model()
    assert parse_config(Model, {"name": "n"}, "env").name == "n"
    with pytest.raises(ConfigError) as caught:
        parse_config(Model, {"inner": {"port": "p"}}, "env")
    assert str(caught.value).startswith("env: inner.port: ")
