"""Filling PromQL templates with hostile label values, the parse check, and the verdict of decoded answers."""

from __future__ import annotations

from typing import Any

import promql_parser
import pytest

from remediator.playbook.prometheus import check_promql, fill_promql, interpret

HOSTILE = [
    '"}) or vector(1) #',
    '"} or vector(1)',
    "\\",
    'a\\"b',
    '\\\\"',
    "line\nbreak",
    "cr\rtab\tnul\x00bell\x07del\x7f",
    "ünïcødé ✓ 订单 🚀",
    "'single' `back`",
    "{queue}",
    "#comment",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_stays_one_string_literal_of_the_query(value: str) -> None:
    filled = fill_promql('rabbitmq_queue_messages{queue="{queue}"} > 100', {"queue": value})
    ast = promql_parser.parse(filled)
    # The structure is unchanged: one comparison of one selector with one equality matcher, whose value is exactly
    # the label value (no `or`, no extra selector, no comment swallowed the rest).
    assert isinstance(ast, promql_parser.BinaryExpr)
    selector = ast.lhs
    assert isinstance(selector, promql_parser.VectorSelector)
    matchers = [m for m in selector.matchers.matchers if m.name != "__name__"]
    assert [(m.name, m.value) for m in matchers] == [("queue", value)]
    assert str(ast.rhs) == "100"


def test_every_bound_placeholder_is_filled_and_others_are_left_alone_inside_label_matchers() -> None:
    filled = fill_promql('up{job="{job}", instance=~"{host}:.*"} == 0', {"job": "api", "host": "db-1"})
    assert filled == 'up{job="api", instance=~"db-1:.*"} == 0'


def test_an_unbound_placeholder_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"\{service\}"):
        fill_promql('up{job="{service}"}', {"queue": "x"})


def test_a_placeholder_outside_a_double_quoted_string_is_an_error() -> None:
    # Outside a string no escaping could keep `1) or vector(1` from changing the query.
    with pytest.raises(ValueError, match=r"\{n\}.*double-quoted"):
        fill_promql("queue_depth > {n}", {"n": "1) or vector(1"})
    with pytest.raises(ValueError, match="double-quoted"):
        fill_promql("x{a='{n}'}", {"n": "v"})
    with pytest.raises(ValueError, match="double-quoted"):
        fill_promql("x{a=`{n}`}", {"n": "v"})


def test_a_quote_in_a_comment_or_another_string_does_not_open_a_double_quoted_string() -> None:
    with pytest.raises(ValueError, match="double-quoted"):
        fill_promql('x # a "comment\n > {n}', {"n": "1"})
    with pytest.raises(ValueError, match="double-quoted"):
        fill_promql("""x{a='"'} > {n}""", {"n": "1"})
    assert fill_promql('x{a="\\"{n}"}', {"n": "v"}) == 'x{a="\\"v"}'


def test_check_promql_accepts_good_expressions_and_templates() -> None:
    assert check_promql("vector(1)") is None
    assert check_promql('rate(rabbitmq_queue_messages_published_total{queue="{queue}"}[5m]) > 0') is None
    assert check_promql("sum by (queue) (rabbitmq_queue_messages) > 1000") is None


@pytest.mark.parametrize(
    "expr",
    ["sum(", "up{job=}", "rate(x[5m]", "x >", 'up{job="a"', "1 +* 2", 'x{queue="{q}"} > {n}', 'x{a="{unclosed}'],
)
def test_check_promql_names_the_problem_of_a_bad_expression(expr: str) -> None:
    problem = check_promql(expr)
    assert problem


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    result = [{"metric": metric, "value": [1700000000.0, value]} for metric, value in series]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_a_non_empty_vector_holds_and_shows_up_to_five_series() -> None:
    answer = interpret(vector(*[({"__name__": "q", "queue": f"orders{i}"}, str(i)) for i in range(7)]))
    assert (answer.ok, answer.holds) == (True, True)
    assert answer.seen.startswith('q{queue="orders0"} 0; q{queue="orders1"} 1')
    assert "orders5" not in answer.seen
    assert answer.seen.endswith("... and 2 more")


def test_an_empty_vector_is_answered_but_does_not_hold() -> None:
    answer = interpret(vector())
    assert (answer.ok, answer.holds, answer.error) == (True, False, "")


@pytest.mark.parametrize(("value", "holds"), [("1", True), ("0", False), ("-2.5", True), ("+Inf", True)])
def test_a_scalar_holds_when_it_is_not_zero(value: str, holds: bool) -> None:
    answer = interpret({"status": "success", "data": {"resultType": "scalar", "result": [1.0, value]}})
    assert (answer.ok, answer.holds, answer.seen) == (True, holds, f"scalar {value}")


@pytest.mark.parametrize(
    "body",
    [
        {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "NaN"]}},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "string", "result": [1.0, "x"]}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
        {"status": "success", "data": {"resultType": "histogram"}},
        {"status": "success"},
        {"status": "error", "errorType": "bad_data", "error": "parse error"},
        ["not", "an", "object"],
    ],
)
def test_an_ambiguous_malformed_or_failed_answer_is_not_ok_and_never_holds(body: Any) -> None:
    answer = interpret(body)
    assert (answer.ok, answer.holds) == (False, False)
    assert answer.error


def test_seen_is_bounded_whatever_the_label_values() -> None:
    answer = interpret(vector(*[({"queue": "x" * 10_000, "other": "y" * 10_000}, "1") for _ in range(5)]))
    assert answer.holds
    assert len(answer.seen) <= 500
