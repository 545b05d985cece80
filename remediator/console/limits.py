"""The rules page's live limits: which targets each rule claims cooldowns on, and the read of what is left of its
limits (cooldowns running, bucket tokens, the hourly budget, breakers) from the state backend in use. A read
only: StateBackend.limits_left changes nothing."""

from __future__ import annotations

import re
from typing import Any

from remediator.config import ActStep, RemediatorConfig, RuleConfig
from remediator.state.base import LimitsLeft, LimitsQuery, RuleLeft, RuleLimits, StateBackend, StateUnavailableError

PLACEHOLDER = re.compile(r"(\{[^{}]*\})")
SHOWN = 50  # cooldowns and breakers listed per rule (the count says how many there are)


def target_pattern(rule: RuleConfig) -> re.Pattern[str]:
    """The targets the rule claims (RuleConfig.target_for): its `target` template with any value in each
    placeholder, or its name and one value per label parameter; then `/<step>` for a playbook's named steps."""
    if rule.target:
        parts = PLACEHOLDER.split(rule.target)
        body = "".join(".+" if PLACEHOLDER.fullmatch(part) else re.escape(part) for part in parts)
    else:
        body = re.escape(rule.name) + ":.+" * len(rule.label_params)
    steps = [re.escape(s.name) for s in rule.playbook if isinstance(s, ActStep) and s.name != "act"]
    suffix = f"(?:/(?:{'|'.join(steps)}))?" if steps else ""
    return re.compile(body + suffix, re.DOTALL)


def limits_query(config: RemediatorConfig) -> LimitsQuery:
    """The read of the limits the rules in force have."""
    return LimitsQuery(
        tuple(RuleLimits(r.name, r.rate, r.cooldown_minutes * 60, target_pattern(r)) for r in config.rules),
        config.limits.actions_per_hour,
        config.circuit_breaker.open_minutes * 60,
    )


async def limits_left(state: StateBackend, config: RemediatorConfig) -> LimitsLeft | None:
    """What is left of the rules' limits, or None when the state backend cannot be read."""
    try:
        return await state.limits_left(limits_query(config))
    except StateUnavailableError:
        return None


def by_rule(left: LimitsLeft | None) -> dict[str, dict[str, Any]]:
    """Each rule's limits left, as the template shows them: the first SHOWN cooldowns (latest ending last) and
    breakers (open and half-open first), with their counts."""
    if left is None:
        return {}
    return {rule.rule: _shown(rule) for rule in left.rules}


def _shown(rule: RuleLeft) -> dict[str, Any]:
    order = {"open": 0, "half_open": 1, "closed": 2}
    breakers = sorted(rule.breakers, key=lambda b: (order[b.state], b.target))
    cooldowns = sorted(rule.cooldowns, key=lambda c: (c.until, c.target))
    return {
        "tokens": rule.tokens,
        "burst": rule.burst,
        "cooldowns": cooldowns[:SHOWN],
        "cooldown_count": len(cooldowns),
        "breakers": breakers[:SHOWN],
        "breaker_count": len(breakers),
        "open_count": sum(1 for b in breakers if b.state != "closed"),
    }
