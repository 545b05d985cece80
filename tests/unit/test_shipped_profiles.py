"""The shipped MasterTrade profile: valid, and in step with the runbook pages that describe it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from remediator.app import load_checked
from remediator.engine import matching_rules

ROOT = Path(__file__).parents[2]
PROFILE = ROOT / "deploy/profiles/mastertrade/remediator.yml"
PAGES = sorted((ROOT / "docs/runbooks").glob("*.md"))


def test_the_shipped_remediator_profile_passes_check_config() -> None:
    config = load_checked(PROFILE)
    assert config.maintenance_windows[0].nth_of_month == 1
    assert config.escalation.after_minutes == {"P0": 15, "P1": 120, "P2": 480, "P3": 4320}


@pytest.mark.parametrize("page", [p for p in PAGES if p.stem != "README"], ids=lambda p: p.stem)
def test_the_rule_a_runbook_page_names_exists_and_matches_its_alert(page: Path) -> None:
    config = load_checked(PROFILE)
    section = page.read_text().split("## What the remediator does on its own", 1)[1]
    named = re.findall(r"Rule `([a-z0-9-]+)`", section)
    matched = [rule.name for rule in matching_rules(config, {"alertname": page.stem})]
    if named:
        assert matched[:1] == named[:1], f"{page.name} names {named[0]}, the profile matches {matched}"
    else:
        assert matched == [], f"{page.name} says nothing acts, but {matched} match"
