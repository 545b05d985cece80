"""The shipped deploy/web-config.example.yml: promtool (exporter-toolkit) accepts it, and so does tradeops."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from common.webconfig import load_web_config, server_ssl_context
from tests.prereqs import require_binary
from tests.webconfig_helpers import make_pki

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "web-config.example.yml"


def example_beside_its_certificates(tmp_path: Path) -> Path:
    """Copy the example unchanged into a directory that holds the tls.crt and tls.key it names."""
    pki = make_pki(tmp_path / "pki")
    shutil.copy(pki.server_cert, tmp_path / "tls.crt")
    shutil.copy(pki.server_key, tmp_path / "tls.key")
    shutil.copy(pki.ca_cert, tmp_path / "client-ca.crt")
    return Path(shutil.copy(EXAMPLE, tmp_path / "web-config.yml"))


def test_promtool_check_web_config_accepts_the_shipped_example(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    path = example_beside_its_certificates(tmp_path)
    result = subprocess.run(
        [promtool, "check", "web-config", str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_tradeops_loads_the_shipped_example_with_tls_and_a_user(tmp_path: Path) -> None:
    config = load_web_config(example_beside_its_certificates(tmp_path))
    assert server_ssl_context(config) is not None
    assert set(config.basic_auth_users) == {"prometheus"}


def test_promtool_refuses_what_tradeops_refuses_a_bad_hash(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  alice: plaintext\n")
    result = subprocess.run(
        [promtool, "check", "web-config", str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
