"""The exporter's configuration: valid profiles load, hostile files give located errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.config import ConfigError
from exporter.config import load

PROFILE = Path(__file__).parents[3] / "deploy/profiles/mastertrade/exporter.yml"


def errors_of(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    return caught.value.render()


def test_shipped_mastertrade_profile_is_valid() -> None:
    config = load(PROFILE)
    assert len(config.probes.service_health) == 8  # six services, Grafana and the Monitoring UI
    assert config.probes.strategy_generation[0].runs is not None


def test_unknown_keys_are_located_errors(tmp_path: Path) -> None:
    rendered = errors_of(tmp_path, "probes:\n  redis:\n    - {name: a, url: 'redis://x', colour: blue}\n")
    assert "probes.redis[0].colour: Extra inputs are not permitted" in rendered


def test_wrong_types_are_located_errors(tmp_path: Path) -> None:
    rendered = errors_of(
        tmp_path, "probes:\n  service_health:\n    - {name: a, url: 'not a url', timeout_seconds: -3}\n"
    )
    assert "probes.service_health[0].url" in rendered
    assert "probes.service_health[0].timeout_seconds" in rendered


def test_sql_identifiers_reject_injection(tmp_path: Path) -> None:
    rendered = errors_of(
        tmp_path,
        "probes:\n  strategy_generation:\n"
        "    - {name: a, dsn: 'postgresql://x/y', table: 'strategies; DROP TABLE x'}\n",
    )
    assert "probes.strategy_generation[0].table" in rendered
    assert "not a plain SQL identifier" in rendered


def test_an_unreadable_secret_file_is_a_config_error(tmp_path: Path) -> None:
    rendered = errors_of(
        tmp_path, f"probes:\n  postgres:\n    - {{name: a, dsn_file: {tmp_path / 'missing-secret'}}}\n"
    )
    assert "cannot read secret file" in rendered


def test_invalid_yaml_reports_line_and_column(tmp_path: Path) -> None:
    rendered = errors_of(tmp_path, "probes:\n  redis: [\n")
    assert "line " in rendered
    assert "invalid YAML" in rendered


def test_duplicate_target_names_are_rejected(tmp_path: Path) -> None:
    rendered = errors_of(
        tmp_path, "probes:\n  redis:\n    - {name: a, url: 'redis://x'}\n    - {name: a, url: 'redis://y'}\n"
    )
    assert "duplicate name(s) a" in rendered


def test_bad_regex_and_relative_glob_are_rejected(tmp_path: Path) -> None:
    rendered = errors_of(
        tmp_path,
        "probes:\n  rabbitmq:\n    - {name: a, management_url: 'http://x', include: ['(']}\n"
        "  backups:\n    - {name: b, path_glob: 'relative/*.gz'}\n",
    )
    assert "invalid regular expression" in rendered
    assert "absolute path" in rendered


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("a)|(b", "unexpected )"),  # would escape its (?:...) in the alternation
        ("(?=orders)", "RE2 syntax"),  # lookahead: RE2 (linear time) has none
        ("(a)\\1", "backreferences are not supported"),
        ("(?P<q>a)(?P=q)", "backreferences are not supported"),
    ],
)
def test_queue_patterns_that_cannot_stand_in_one_alternation_are_located_errors(
    tmp_path: Path, pattern: str, message: str
) -> None:
    rendered = errors_of(
        tmp_path, f"probes:\n  rabbitmq:\n    - {{name: a, management_url: 'http://x', include: ['{pattern}']}}\n"
    )
    assert "probes.rabbitmq[0].include[0]" in rendered
    assert message in rendered


def test_queue_patterns_too_large_for_re2_together_are_a_located_error(tmp_path: Path) -> None:
    patterns = ", ".join(f"'{first}\\pL{{200}}'" for first in "abcdefgh")  # each compiles alone
    rendered = errors_of(
        tmp_path, f"probes:\n  rabbitmq:\n    - {{name: a, management_url: 'http://x', exclude: [{patterns}]}}\n"
    )
    assert "probes.rabbitmq[0]" in rendered
    assert "cannot be combined" in rendered


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "top level must be a mapping" in errors_of(tmp_path, "- a\n- b\n")


def test_check_config_exits_1_with_located_errors_and_0_when_valid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("probes:\n  redis:\n    - {name: a, colour: blue}\n")
    result = subprocess.run(
        [sys.executable, "-m", "exporter.main", "--config.file", str(bad), "--check-config"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert f"{bad}: probes.redis[0].colour" in result.stderr
    good = subprocess.run(
        [sys.executable, "-m", "exporter.main", "--config.file", str(PROFILE), "--check-config"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr


def test_flags_fall_back_to_tradeops_environment_variables(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter.main", "--check-config"],
        capture_output=True,
        text=True,
        check=False,
        env={"TRADEOPS_CONFIG_FILE": str(PROFILE), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
