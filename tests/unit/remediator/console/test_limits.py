"""The rules page's limits: the targets each rule claims (as RuleConfig.target_for makes them), the query built
from the config, and what the page lists of a read."""

from __future__ import annotations

import datetime as dt
from typing import Any

from remediator.config import RemediatorConfig, RuleConfig
from remediator.console.app import environment
from remediator.console.limits import SHOWN, by_rule, limits_query, target_pattern
from remediator.state.base import BreakerLeft, CooldownLeft, LimitsLeft, RuleLeft


def rule(**fields: Any) -> RuleConfig:
    return RuleConfig.model_validate({"name": "r", "matchers": ['alertname="A"'], "action": "log", **fields})


def test_a_rule_claims_the_targets_its_template_makes_and_no_other() -> None:
    templated = target_pattern(rule(target="collector:{collector}"))
    made = rule(target="collector:{collector}").target_for({"collector": "bin.ance"})
    assert templated.fullmatch(made)
    assert not templated.fullmatch("collector:")
    assert not templated.fullmatch("xcollector:binance")
    named = rule(label_params={"a": {"label": "a", "allowed": ["1"]}, "b": {"label": "b", "allowed": ["2"]}})
    assert target_pattern(named).fullmatch(named.target_for({"a": "1", "b": "2"}))
    assert not target_pattern(named).fullmatch("r")
    assert target_pattern(rule()).fullmatch("r")
    assert not target_pattern(rule()).fullmatch("r:x")
    assert not target_pattern(rule(target="a.b")).fullmatch("aXb")  # literal text is literal


def test_a_playbooks_named_steps_claim_their_own_targets() -> None:
    steps = [{"name": "first", "action": "log"}, {"name": "second", "action": "log"}]
    playbook = RuleConfig.model_validate({"name": "r", "matchers": ['alertname="A"'], "steps": steps})
    pattern = target_pattern(playbook)
    assert [bool(pattern.fullmatch(t)) for t in ("r", "r/first", "r/second", "r/third")] == [True, True, True, False]


def test_the_query_carries_each_rules_rate_and_cooldown_and_the_global_limits() -> None:
    config = RemediatorConfig.model_validate(
        {
            "webhook_token": "t",
            "limits": {"actions_per_hour": 7},
            "circuit_breaker": {"failures": 2, "open_minutes": 3},
            "rules": [{"name": "r", "matchers": ['alertname="A"'], "action": "log", "cooldown_minutes": 2}],
        }
    )
    query = limits_query(config)
    assert (query.actions_per_hour, query.breaker_open_seconds) == (7, 180)
    assert [(r.rule, r.cooldown_seconds, r.rate.burst) for r in query.rules] == [("r", 120, 1)]


def test_the_page_lists_open_breakers_first_and_soonest_cooldowns_first_at_most_shown() -> None:
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    cooldowns = tuple(CooldownLeft(f"t{i}", at + dt.timedelta(seconds=SHOWN + 5 - i)) for i in range(SHOWN + 5))
    breakers = (
        BreakerLeft("c", "closed", 1, None),
        BreakerLeft("h", "half_open", 3, None),
        BreakerLeft("o", "open", 3, at),
    )
    shown = by_rule(LimitsLeft(at, 4, (RuleLeft("r", 1.5, 2, cooldowns, breakers),)))["r"]
    assert [b.target for b in shown["breakers"]] == ["o", "h", "c"]
    assert shown["open_count"] == 2
    assert shown["cooldown_count"] == SHOWN + 5
    assert len(shown["cooldowns"]) == SHOWN
    assert shown["cooldowns"][0].target == f"t{SHOWN + 4}"
    assert by_rule(None) == {}


def test_hostile_targets_on_the_rules_page_render_as_text() -> None:
    config = RemediatorConfig.model_validate(
        {"webhook_token": "t", "rules": [{"name": "r", "matchers": ['alertname="A"'], "action": "log"}]}
    )
    at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    rule_left = RuleLeft("r", 0.0, 1, (CooldownLeft(hostile, at),), (BreakerLeft(hostile, "open", 3, at),))
    left = LimitsLeft(at, 0, (rule_left,))
    html = (
        environment()
        .get_template("rules.html")
        .render(
            csrf="c",
            logged_in=True,
            prefix="/console",
            rules=config.rules,
            limits=config.limits,
            dry_run=False,
            left=left,
            live=by_rule(left),
            breaker=config.circuit_breaker,
            shown=SHOWN,
        )
    )
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert html.count("&lt;script&gt;alert(2)&lt;/script&gt;") == 2
