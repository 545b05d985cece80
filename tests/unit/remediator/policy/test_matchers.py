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
        ('a=~"\\d+"', {"a": "12"}, True),  # a backslash Alertmanager does not unescape stays in the regex
        ("a == b", {"a": "= b"}, True),  # Alertmanager reads the value "= b"
        ('a=~"x"', {"a": "x\n"}, False),  # $ is the end of the text, as in Go
        ('service=~"caf."', {"service": "café"}, True),
    ],
)
def test_matchers_follow_alertmanager_semantics(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["alertname", '="x"', 'a=~"("', 'a="x" b="y"', 'a="open', 'a="1",b="2"'])
def test_malformed_matchers_are_rejected_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"matcher|regular expression"):
        parse_matcher(text)


def test_all_matchers_must_hold() -> None:
    matchers = (parse_matcher('a="1"'), parse_matcher('b=~"x.*"'))
    assert matches_all(matchers, {"a": "1", "b": "xy"})
    assert not matches_all(matchers, {"a": "1", "b": "y"})


@pytest.mark.parametrize("text", ['a=~"(?=x)"', 'a=~"(?<!x)y"', 'a=~"(a)\\1"', 'a=~"(?P<n>a)(?P=n)"'])
def test_a_regex_re2_refuses_is_an_error_naming_the_matcher(text: str) -> None:
    with pytest.raises(ValueError, match="RE2") as refused:
        parse_matcher(text)
    assert repr(text) in str(refused.value)


def test_a_nested_repetition_matches_in_linear_time() -> None:
    # (a|aa)+ against 33 a's and a b took 0.46 s with Python's backtracking re (36: 2.0 s); this input would not
    # finish with it. RE2 answers in microseconds.
    assert not parse_matcher('a=~"(a|aa)+"').matches({"a": "a" * 100_000 + "b"})
    assert parse_matcher('a=~"(a|aa)+"').matches({"a": "a" * 100_000})
