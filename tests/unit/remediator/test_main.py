"""`tradeops-remediator` run in-process for what ends before it serves: --check-config (exit 0 or 1 with located
errors), --explain (one JSON line per alert and rule, nothing shared written), and the refusals (bad flags, no
token, a bad listen address)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from remediator.main import main

RULES = [
    {"name": "restart-api", "matchers": ["alertname=ServiceDown"], "action": "log"},
    {"name": "quiet", "matchers": ["alertname=Noise"], "action": "ignore"},
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRADEOPS_"):
            monkeypatch.delenv(name)


def config_file(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / "remediator.yml"
    document = {"audit_path": str(tmp_path / "data" / "audit.sqlite3"), "rules": RULES} | fields
    path.write_text(yaml.safe_dump(document))
    return path


def payload_file(tmp_path: Path, *alerts: tuple[str, str, str]) -> Path:
    path = tmp_path / "payload.json"
    documents = [
        {"status": status, "labels": {"alertname": name}, "startsAt": "2024-06-03T12:00:00Z", "fingerprint": fp}
        for name, status, fp in alerts
    ]
    path.write_text(json.dumps({"version": "4", "status": "firing", "alerts": documents}))
    return path


def test_check_config_accepts_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file(tmp_path)
    assert main(["--config.file", str(path), "--check-config"]) == 0
    assert capsys.readouterr().out == f"{path}: configuration is valid\n"
    assert not (tmp_path / "data").exists()


def test_check_config_prints_each_error_with_its_location(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file(tmp_path, limits={"concurrency": 0}, rules=[{"name": "r", "matchers": [], "action": "log"}])
    assert main(["--config.file", str(path), "--check-config"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert any(line.startswith(f"{path}: limits.concurrency: ") for line in errors)
    assert any(line.startswith(f"{path}: rules[0].matchers: ") for line in errors)


def test_check_config_refuses_an_unknown_action(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config_file(tmp_path, rules=[{"name": "r", "matchers": ["a=b"], "action": "rm_rf"}])
    assert main(["--config.file", str(path), "--check-config"]) == 1
    assert "rules[0]" in capsys.readouterr().err


def test_a_missing_config_file_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config.file", str(tmp_path / "absent.yml"), "--check-config"]) == 1
    assert "cannot read file" in capsys.readouterr().err


def test_explain_prints_one_decision_per_alert_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(tmp_path)
    alerts = payload_file(
        tmp_path, ("ServiceDown", "firing", "a1"), ("Noise", "firing", "a2"), ("Other", "firing", "a3")
    )
    assert main(["--config.file", str(path), "--explain", str(alerts)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["fingerprint"], line["rule"], line["decision"], line["escalates"]) for line in lines] == [
        ("a1", "restart-api", "executed", False),
        ("a2", "quiet", "ignored", False),
        ("a3", None, "no_rule", True),
    ]
    assert not (tmp_path / "data").exists()


def test_explain_says_a_resolved_alert_never_acts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alerts = payload_file(tmp_path, ("ServiceDown", "resolved", "a1"))
    assert main(["--config.file", str(config_file(tmp_path)), "--explain", str(alerts)]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "resolved"


def test_explain_honours_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alerts = payload_file(tmp_path, ("ServiceDown", "firing", "a1"))
    assert main(["--config.file", str(config_file(tmp_path, dry_run=True)), "--explain", str(alerts)]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "dry_run"


def test_explain_of_an_invalid_payload_prints_located_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": "3", "status": "firing", "alerts": [{"status": "x"}]}))
    assert main(["--config.file", str(config_file(tmp_path)), "--explain", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: version: " in err
    assert f"{bad}: alerts[0].status: " in err


def test_explain_of_a_missing_payload_file_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config.file", str(config_file(tmp_path)), "--explain", str(tmp_path / "none.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_an_unknown_log_level_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config.file", str(config_file(tmp_path)), "--log.level", "loud", "--check-config"]) == 2
    assert "tradeops-remediator: " in capsys.readouterr().err


def test_without_any_token_the_remediator_refuses_to_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = "127.0.0.1:1"
    assert main(["--config.file", str(config_file(tmp_path)), "--web.listen-address", port]) == 1
    assert "no webhook token" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1:99999", "127.0.0.1:"])
def test_a_bad_listen_address_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str) -> None:
    assert main(["--config.file", str(config_file(tmp_path)), "--web.listen-address", address]) == 2
    assert "tradeops-remediator: " in capsys.readouterr().err
