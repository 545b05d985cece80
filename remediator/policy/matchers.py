"""Alertmanager matchers: `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`, parsed as Alertmanager's
`labels.ParseMatchers` does and matched as its `labels.Matcher` does (regexes in RE2, anchored `^(?:re)$`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from common.regex import Regex, RegexError, compile_re2

# Alertmanager's matcher regexp (pkg/labels/parse.go); Go's \s is ASCII whitespace and $ is the end of the text.
MATCHER = re.compile(
    r"[\t\n\f\r ]*([a-zA-Z_:][a-zA-Z0-9_:]*)[\t\n\f\r ]*(=~|=|!=|!~)[\t\n\f\r ]*(.*?)[\t\n\f\r ]*", re.S
)


@dataclass(frozen=True)
class Matcher:
    """One label matcher; a missing label matches as the empty string, as in Alertmanager."""

    name: str
    operator: str
    value: str
    pattern: Regex | None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether the labels satisfy this matcher."""
        actual = labels.get(self.name, "")
        if self.operator == "=":
            return actual == self.value
        if self.operator == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.search(actual)
        return found if self.operator == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.operator}{json.dumps(self.value, ensure_ascii=False)}"


def _split(text: str) -> list[str]:
    """Split `{a="1",b="2"}` at the commas outside quotes, as Alertmanager's ParseMatchers does."""
    text = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = escaped = False
    for char in text:
        if char == "," and not inside_quotes:
            tokens.append("".join(token))
            token = []
            continue
        if char == '"':
            if escaped:
                escaped = False
            else:
                inside_quotes = not inside_quotes
        elif char == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(char)
    if "".join(token).strip():
        tokens.append("".join(token).strip())
    return tokens


def _unescape(text: str, raw: str) -> str:
    """The value of a matcher's right-hand side: quotes removed; `\\n`, `\\"` and `\\\\` unescaped; any other
    backslash kept (so `=~"\\d+"` is the regex `\\d+`)."""
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    value: list[str] = []
    escaped = False
    for index, char in enumerate(raw):
        if escaped:
            escaped = False
            value.append({"n": "\n", '"': '"', "\\": "\\"}.get(char, "\\" + char))
        elif char == "\\":
            if index < len(raw) - 1:
                escaped = True
            else:
                value.append("\\")
        elif char == '"':
            if not quoted or index < len(raw) - 1:
                raise ValueError(f"matcher {text!r}: the value contains an unescaped double quote")
            quoted = False
        else:
            value.append(char)
    if quoted:
        raise ValueError(f"matcher {text!r}: the value's closing double quote is missing")
    return "".join(value)


def parse_matcher(text: str) -> Matcher:
    """Parse exactly one matcher (braces and a trailing comma allowed, as Alertmanager allows them), raising
    ValueError that names the matcher's text and what is wrong with it."""
    tokens = _split(text)
    if len(tokens) != 1:
        raise ValueError(f"matcher {text!r}: give one matcher per list item (found {len(tokens)})")
    found = MATCHER.fullmatch(tokens[0])
    if found is None:
        raise ValueError(f'matcher {text!r} is not a matcher like name="value", name!="v", name=~"re" or name!~"re"')
    name, operator, raw = found.groups()
    value = _unescape(text, raw)
    pattern = None
    if operator in {"=~", "!~"}:
        try:
            pattern = compile_re2(f"^(?:{value})$")
        except RegexError as error:
            raise ValueError(f"matcher {text!r}: invalid regular expression (RE2 syntax): {error}") from None
    return Matcher(name, operator, value, pattern)


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    """Return whether every matcher is satisfied (no matchers: everything matches)."""
    return all(matcher.matches(labels) for matcher in matchers)
