"""The action registry and parameter substitution: only string values that are exactly `{name}` of a bound
(allowlisted) parameter are replaced, once; nothing else a label carries reaches the parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from remediator.actions.base import Action, ActionParams, ActionRegistry, ActionResult, substitute


class NoteParams(ActionParams):
    note: str = ""


class Recorder(Action):
    params_model = NoteParams

    def __init__(self, name: str, closed: list[str]) -> None:
        self.name = name  # type: ignore[misc]
        self.closed = closed

    async def run(self, params: Any, bound: Mapping[str, str]) -> ActionResult:
        return ActionResult(self.name)

    async def close(self) -> None:
        self.closed.append(self.name)


BOUND = {"service": "api", "queue": "orders"}


def test_a_value_that_is_exactly_a_bound_name_is_replaced() -> None:
    assert substitute({"container": "{service}", "q": "{queue}"}, BOUND) == {"container": "api", "q": "orders"}


@pytest.mark.parametrize(
    "value",
    [
        "{service}x",
        "x{service}",
        "{service}{queue}",
        "{ service }",
        "{SERVICE}",
        "{unbound}",
        "{}",
        "{",
        "}",
        "service",
    ],
)
def test_a_value_that_is_not_exactly_a_bound_name_is_left_alone(value: str) -> None:
    assert substitute({"p": value}, BOUND) == {"p": value}


def test_a_bound_value_that_looks_like_a_placeholder_is_not_substituted_again() -> None:
    bound = {"a": "{b}", "b": "secret"}
    assert substitute({"p": "{a}", "q": "{b}"}, bound) == {"p": "{b}", "q": "secret"}


def test_nested_mappings_are_substituted_and_other_values_kept() -> None:
    params = {"json_body": {"svc": "{service}", "deep": {"q": "{queue}"}}, "n": 3, "flag": None, "list": ["{service}"]}
    assert substitute(params, BOUND) == {
        "json_body": {"svc": "api", "deep": {"q": "orders"}},
        "n": 3,
        "flag": None,
        "list": ["{service}"],
    }


def test_substitute_leaves_the_rules_parameters_unchanged() -> None:
    params = {"json_body": {"svc": "{service}"}}
    substitute(params, BOUND)
    assert params == {"json_body": {"svc": "{service}"}}


def test_action_parameters_refuse_unknown_keys_and_are_frozen() -> None:
    with pytest.raises(ValidationError):
        NoteParams.model_validate({"note": "x", "shell": "sh"})
    params = NoteParams(note="x")
    with pytest.raises(ValidationError):
        params.note = "y"  # type: ignore[misc]


def test_the_registry_finds_actions_by_name_only() -> None:
    closed: list[str] = []
    registry = ActionRegistry([Recorder("b", closed), Recorder("a", closed)])
    assert registry.names() == ["a", "b"]
    assert "a" in registry
    assert "c" not in registry
    assert registry.get("b").name == "b"
    with pytest.raises(KeyError):
        registry.get("c")


async def test_closing_the_registry_closes_every_action() -> None:
    closed: list[str] = []
    await ActionRegistry([Recorder("b", closed), Recorder("a", closed)]).close()
    assert sorted(closed) == ["a", "b"]
