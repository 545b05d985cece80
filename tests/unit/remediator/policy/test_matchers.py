"""Alertmanager matcher semantics."""

from __future__ import annotations

import pytest

from remediator.policy.matchers import matches_all, parse_matcher


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('alertname="A"', {"alertname": "A"}, True),
        ('alertname="A"', {"alertname": "AB"}, False),
        ('alertname!="A"', {"alertname": "B"}, True),
        ('alertname=~"A|B"', {"alertname": "B"}, True),
        ('alertname=~"A"', {"alertname": "AB"}, False),  # anchored, as in Alertmanager
        ('alertname!~"Crit.*"', {"alertname": "CriticalServiceDown"}, False),
        ('team=""', {}, True),  # a missing label matches the empty string
        ('team!=""', {}, False),
        ("severity=critical", {"severity": "critical"}, True),
        ('msg="a\\"b"', {"msg": 'a"b'}, True),
    ],
)
def test_matchers_follow_alertmanager_semantics(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["alertname", '="x"', 'a=~"("', "a == b", 'a="x" b="y"'])
def test_malformed_matchers_are_rejected_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"matcher|regular expression"):
        parse_matcher(text)


def test_all_matchers_must_hold() -> None:
    matchers = (parse_matcher('a="1"'), parse_matcher('b=~"x.*"'))
    assert matches_all(matchers, {"a": "1", "b": "xy"})
    assert not matches_all(matchers, {"a": "1", "b": "y"})
