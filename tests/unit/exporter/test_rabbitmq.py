"""The RabbitMQ probe's queue filter: full matches, several patterns per list, exclude over include."""

from __future__ import annotations

import pytest

from exporter.probes.rabbitmq import QueueFilter


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("orders.new", True),
        ("signals", True),
        ("orders.dead", False),  # excluded although included
        ("xorders.new", False),  # full match: no prefix
        ("signalsx", False),  # full match: no suffix
        ("SIGNALS", True),  # a scoped flag applies to its own pattern only
        ("ORDERS.new", False),
        ("", False),
    ],
)
def test_a_queue_is_reported_when_any_include_and_no_exclude_pattern_matches_all_of_its_name(
    name: str, allowed: bool
) -> None:
    queue_filter = QueueFilter((r"orders\..*", "(?i:signals)"), (r".*\.dead", "amq.*"))
    assert queue_filter.allows(name) is allowed


def test_without_include_patterns_every_queue_not_excluded_is_reported() -> None:
    queue_filter = QueueFilter((), (r"amq\..*",))
    assert queue_filter.allows("anything")
    assert not queue_filter.allows("amq.gen-123")
    assert QueueFilter((), ()).allows("x")


def test_an_alternation_inside_one_pattern_stays_within_that_pattern() -> None:
    queue_filter = QueueFilter(("a|b", "c"), ("b",))
    assert [n for n in ("a", "b", "c", "ab", "d") if queue_filter.allows(n)] == ["a", "c"]


def test_a_leading_flag_applies_to_its_own_pattern_only() -> None:
    # RE2 scopes a flag to the group it stands in: (?i) in one pattern does not reach the next.
    queue_filter = QueueFilter(("(?i)signals", "orders"), ())
    assert queue_filter.allows("SIGNALS")
    assert not queue_filter.allows("ORDERS")


def test_a_nested_repetition_is_matched_in_linear_time() -> None:
    # RE2: (a|aa)+ over a long name that almost matches answers at once; Python's re would never finish.
    assert not QueueFilter(("(a|aa)+",), ()).allows("a" * 100_000 + "b")


def test_each_name_is_matched_once_and_later_scrapes_reuse_the_decision() -> None:
    queue_filter = QueueFilter((r"orders\..*",), (r".*\.dead",))
    calls: list[str] = []
    include = queue_filter.include
    assert include is not None
    match = include.fullmatch

    class Counting:
        def fullmatch(self, name: str) -> object:
            calls.append(name)
            return match(name)

    queue_filter.include = Counting()  # type: ignore[assignment]
    names = ["orders.new", "orders.dead", "signals"]
    first = [queue_filter.allows(name) for name in names]
    second = [queue_filter.allows(name) for name in names]
    assert first == second == [True, False, False]
    assert calls == names  # the second pass matched nothing again


def test_the_memo_of_decisions_never_grows_past_its_limit_and_answers_stay_right() -> None:
    queue_filter = QueueFilter((r"q\d+",), (), memo_limit=10)
    for index in range(1000):  # churning names, as temporary queues are
        assert queue_filter.allows(f"q{index}")
        assert not queue_filter.allows(f"x{index}")
        assert len(queue_filter._memo) <= 10
