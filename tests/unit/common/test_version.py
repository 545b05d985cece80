"""--version on the three binaries, the version single-sourced from pyproject, the revision from the build's
environment or the checkout, and the shared --log.format flag."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from sandbox.main import main as sandbox_main

from common.version import build_info, git_revision, package_version, revision, version_text
from exporter.main import main as exporter_main
from remediator.main import main as remediator_main

ROOT = Path(__file__).resolve().parents[3]
MAINS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "tradeops-exporter": exporter_main,
    "tradeops-remediator": remediator_main,
    "tradeops-sandbox": sandbox_main,
}


def test_the_version_is_pyprojects() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert package_version() == declared


def test_the_revision_comes_from_the_build_environment_first() -> None:
    assert revision({"TRADEOPS_REVISION": "0123abc"}) == "0123abc"
    assert build_info({"TRADEOPS_REVISION": "0123abc"}).revision == "0123abc"


def test_without_the_variable_the_revision_is_the_checkouts_head() -> None:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert git_revision(ROOT) == head.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", revision({}))  # cached once per process: HEAD may have moved since


def test_outside_a_checkout_and_without_the_variable_the_revision_is_unknown(tmp_path: Path) -> None:
    assert git_revision(tmp_path) == "unknown"


@pytest.mark.parametrize("program", sorted(MAINS))
def test_version_prints_name_version_revision_and_python_and_exits_0(
    program: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEOPS_REVISION", "feedface")
    with pytest.raises(SystemExit) as exited:
        MAINS[program](["--version"])  # no --config.file: --version needs none
    assert exited.value.code == 0
    first, *rest = capsys.readouterr().out.splitlines()
    assert first == f"{program}, version {package_version()} (revision: feedface)"
    assert re.fullmatch(r"  python version: +" + re.escape(platform.python_version()), rest[0])
    assert rest[1].startswith("  platform:")


def test_version_of_a_real_process_matches_version_text() -> None:
    env = {**os.environ, "TRADEOPS_REVISION": "cafe1234"}
    done = subprocess.run(
        [sys.executable, "-m", "remediator.main", "--version"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == version_text("tradeops-remediator", {"TRADEOPS_REVISION": "cafe1234"})


@pytest.mark.parametrize("program", sorted(MAINS))
def test_an_unknown_log_format_exits_2_with_a_message(program: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--log.format", "xml"]
    if program != "tradeops-sandbox":
        argv += ["--config.file", "/nonexistent.yml"]
    assert MAINS[program](argv) == 2
    assert "--log.format 'xml' is not one of logfmt, json" in capsys.readouterr().err


def test_the_sandbox_takes_log_level_with_a_dot_like_the_services(capsys: pytest.CaptureFixture[str]) -> None:
    assert sandbox_main(["--log.level", "loud"]) == 2
    assert "--log.level 'loud'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sandbox_main(["--log-level", "info"])
