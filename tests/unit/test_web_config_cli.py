"""--web.config.file on both services' command lines: --check-config validates it with located errors, and the
remediator's old `tls:` key is a located error pointing to the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import ConfigError
from exporter import main as exporter_main
from remediator import main as remediator_main
from remediator.config import load
from tests.exporter_helpers import write_config


def test_check_config_locates_an_error_in_the_web_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, {"backups": [{"name": "first", "path_glob": f"{tmp_path}/*.gz"}]})
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: not-a-hash\ntls_server_config:\n  cert_file: gone.crt\n")
    argv = ["--config.file", str(config), "--web.config.file", str(web), "--check-config"]
    assert exporter_main.main(argv) == 1
    err = capsys.readouterr().err
    assert f"{web}: basic_auth_users" in err
    assert f"{web}: tls_server_config" in err


def test_check_config_accepts_a_valid_web_config_given_by_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, {"backups": [{"name": "first", "path_glob": f"{tmp_path}/*.gz"}]})
    web = tmp_path / "web.yml"
    web.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    monkeypatch.setenv("TRADEOPS_WEB_CONFIG_FILE", str(web))
    assert exporter_main.main(["--config.file", str(config), "--check-config"]) == 0
    assert f"{web}: web configuration is valid" in capsys.readouterr().out


def test_the_remediators_check_config_validates_the_web_config_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "remediator.yml"
    config.write_text(f"audit_path: {tmp_path / 'a.db'}\nallow_unauthenticated: true\n")
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_user: {}\n")
    argv = ["--config.file", str(config), "--web.config.file", str(web), "--check-config"]
    assert remediator_main.main(argv) == 1
    assert f"{web}: basic_auth_user: Extra inputs are not permitted" in capsys.readouterr().err


def test_the_remediators_tls_key_is_a_located_error_naming_the_flag(tmp_path: Path) -> None:
    config = tmp_path / "remediator.yml"
    config.write_text("tls: {cert_file: /etc/tls.crt, key_file: /etc/tls.key}\n")
    with pytest.raises(ConfigError) as caught:
        load(config)
    assert f"{config}: tls:" in caught.value.render()
    assert "--web.config.file" in caught.value.render()
