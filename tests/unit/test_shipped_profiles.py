"""The shipped profiles (deploy/profiles/<system>/): valid, loading their own rule set, and in step with the
runbook pages that describe what the remediator does."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import load as load_exporter_config
from remediator.app import load_checked
from remediator.config import RemediatorConfig
from remediator.policy.decide import matching_rules
from remediator.policy.windows import in_window
from tests.prereqs import require_binary

ROOT = Path(__file__).parents[2]
PROFILES = sorted(p.parent.name for p in (ROOT / "deploy/profiles").glob("*/profile.yml"))
PAGES = sorted((ROOT / "docs/runbooks").glob("*.md"))
COMMON_RULE_FILES = {"tradeops.yml", "thresholds.yml"}


def manifest(profile: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "deploy/profiles" / profile / "profile.yml").read_text())
    return data


@cache
def remediator(profile: str) -> RemediatorConfig:
    return load_checked(ROOT / "deploy/profiles" / profile / "remediator.yml")


def alert_names(rule_files: list[str]) -> set[str]:
    names = set()
    for name in rule_files:
        for group in yaml.safe_load((ROOT / "alert_rules" / name).read_text())["groups"]:
            names |= {rule["alert"] for rule in group["rules"] if "alert" in rule}
    return names


def profile_of(alert: str) -> list[str]:
    """The profiles whose own rule file defines the alert; every profile for the common files' alerts."""
    owners = [p for p in PROFILES if alert in alert_names(sorted(set(manifest(p)["rule_files"]) - COMMON_RULE_FILES))]
    return owners or PROFILES


def test_there_is_a_profile_for_every_seed_system() -> None:
    assert {manifest(p)["seed"] for p in PROFILES} == {"000", "002", "003", "004"}


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_passes_check_config_for_both_services(profile: str) -> None:
    load_exporter_config(ROOT / "deploy/profiles" / profile / "exporter.yml")
    remediator(profile)


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_loads_its_own_rule_set_and_promtool_accepts_it(profile: str) -> None:
    files = manifest(profile)["rule_files"]
    assert set(files) >= COMMON_RULE_FILES
    own = set(files) - COMMON_RULE_FILES
    assert len(own) == 1, "one rule file of the system's own"
    result = subprocess.run(
        [require_binary("promtool"), "check", "rules", *(str(ROOT / "alert_rules" / f) for f in files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_every_alert_a_remediator_rule_names_exists_in_the_profiles_rule_set(profile: str) -> None:
    known = alert_names(manifest(profile)["rule_files"]) | set(manifest(profile).get("external_alerts", []))
    for rule in remediator(profile).rules:
        for matcher in rule.matchers:
            found = re.fullmatch(r'alertname(=~?)"(.*)"', matcher)
            if found is None:
                continue
            names = found.group(2).split("|") if found.group(1) == "=~" else [found.group(2)]
            for name in names:
                assert name in known, f"{profile}: rule {rule.name} matches {name}, which no loaded rule raises"


def test_the_mastertrade_remediator_keeps_the_runbooks_maintenance_window_and_escalation_matrix() -> None:
    config = remediator("mastertrade")
    (window,) = config.maintenance_windows
    first_sunday = (dt.datetime(2024, 9, 1, 2, tzinfo=dt.UTC), dt.datetime(2024, 6, 2, 5, 59, tzinfo=dt.UTC))
    outside = (dt.datetime(2024, 9, 8, 3, tzinfo=dt.UTC), dt.datetime(2024, 6, 2, 6, tzinfo=dt.UTC))
    assert all(in_window(window, at) for at in first_sunday)
    assert not any(in_window(window, at) for at in outside)
    assert config.escalation.after_minutes == {"P0": 15, "P1": 120, "P2": 480, "P3": 4320}


def test_the_ai_trading_remediator_keeps_the_runbooks_sunday_2am_new_york_window() -> None:
    (window,) = remediator("ai-trading").maintenance_windows
    utc = dt.UTC
    assert in_window(window, dt.datetime(2024, 1, 7, 7, 0, tzinfo=utc))  # EST
    assert not in_window(window, dt.datetime(2024, 1, 7, 8, 0, tzinfo=utc))
    assert in_window(window, dt.datetime(2024, 7, 7, 6, 0, tzinfo=utc))  # EDT
    assert not in_window(window, dt.datetime(2024, 7, 7, 7, 0, tzinfo=utc))


@pytest.mark.parametrize("page", [p for p in PAGES if p.stem != "README"], ids=lambda p: p.stem)
def test_the_rule_a_runbook_page_names_exists_and_matches_its_alert(page: Path) -> None:
    section = page.read_text().split("## What the remediator does on its own", 1)[1]
    named = re.findall(r"Rule `([a-z0-9-]+)`", section)
    for profile in profile_of(page.stem):
        matched = [rule.name for rule in matching_rules(remediator(profile), {"alertname": page.stem})]
        if named:
            assert matched[:1] == named[:1], f"{page.name} names {named[0]}, {profile} matches {matched}"
        else:
            assert matched == [], f"{page.name} says nothing acts, but {profile} matches {matched}"
