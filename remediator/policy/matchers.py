"""Alertmanager matcher semantics: `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"` (anchored regexes)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s]*))\s*$')


@dataclass(frozen=True)
class Matcher:
    """One label matcher; a missing label matches as the empty string, as in Alertmanager."""

    name: str
    operator: str
    value: str
    pattern: re.Pattern[str] | None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether the labels satisfy this matcher."""
        actual = labels.get(self.name, "")
        if self.operator == "=":
            return actual == self.value
        if self.operator == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.operator == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.operator}{json.dumps(self.value)}"


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher, raising ValueError that says what is wrong."""
    found = MATCHER.match(text)
    if found is None:
        raise ValueError(f'{text!r} is not a matcher like name="value", name!="v", name=~"re" or name!~"re"')
    name, operator, quoted, bare = found.groups()
    value = json.loads(f'"{quoted}"') if quoted is not None else bare
    pattern = None
    if operator in {"=~", "!~"}:
        try:
            pattern = re.compile(value)
        except re.error as error:
            raise ValueError(f"{text!r}: invalid regular expression: {error}") from None
    return Matcher(name, operator, value, pattern)


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    """Return whether every matcher is satisfied (no matchers: everything matches)."""
    return all(matcher.matches(labels) for matcher in matchers)
