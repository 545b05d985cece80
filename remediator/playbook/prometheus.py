"""Placeholder until the Prometheus query client lands: filling and checking PromQL conditions."""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_promql(template: str, bound: Mapping[str, str]) -> str:
    """Fill `{name}` placeholders with values escaped for a double-quoted PromQL string."""

    def escaped(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in bound:
            raise ValueError(f"placeholder {{{name}}} is not a label parameter")
        value = bound[name]
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return PLACEHOLDER.sub(escaped, template)


def check_promql(expr: str) -> str | None:
    """A parse problem of an expression, or None."""
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return "unbalanced parentheses"
    return "unbalanced parentheses" if depth else None
