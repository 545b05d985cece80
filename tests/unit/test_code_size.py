"""The remediator's size limits (DESIGN.md, issue 19): no class over 250 lines, no function over 60, in every module
under remediator/, each offender named with its file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "remediator"
MAX_CLASS_LINES = 250
MAX_FUNCTION_LINES = 60


def oversized(source: str, where: str) -> list[str]:
    """Every class over MAX_CLASS_LINES and function over MAX_FUNCTION_LINES in source, decorators included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            kind, limit = "class", MAX_CLASS_LINES
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            kind, limit = "function", MAX_FUNCTION_LINES
        else:
            continue
        first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
        lines = (node.end_lineno or node.lineno) - first + 1
        if lines > limit:
            found.append(f"{where}:{first}: {kind} {node.name} has {lines} lines (limit {limit})")
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_remediator_has_modules_to_measure() -> None:
    assert len(modules()) > 10


def test_no_class_or_function_of_the_remediator_is_over_its_size_limit() -> None:
    problems = [
        problem
        for path in modules()
        for problem in oversized(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert not problems, "\n".join(problems)


def _function(name: str, body_lines: int, indent: str = "", decorated: bool = False) -> str:
    head = f"{indent}@staticmethod\n" if decorated else ""
    return head + f"{indent}def {name}():\n" + "".join(f"{indent}    x = {n}\n" for n in range(body_lines))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (_function("fits", 59), []),  # 60 lines with its def line: at the limit
        (_function("long", 60), ["m.py:1: function long has 61 lines (limit 60)"]),
        ("async " + _function("slow", 60), ["m.py:1: function slow has 61 lines (limit 60)"]),
        (
            "class C:\n" + _function("method", 59, "    ", decorated=True),
            ["m.py:2: function method has 61 lines (limit 60)"],
        ),
        ("class C:\n" + "".join(f"    x{n} = {n}\n" for n in range(249)), []),
        (
            "class Big:\n" + "".join(f"    x{n} = {n}\n" for n in range(250)),
            ["m.py:1: class Big has 251 lines (limit 250)"],
        ),
        (
            "def outer():\n" + _function("inner", 60, "    "),
            [
                "m.py:1: function outer has 62 lines (limit 60)",
                "m.py:2: function inner has 61 lines (limit 60)",
            ],
        ),
    ],
)
def test_the_size_check_names_each_offender_with_file_and_line(source: str, expected: list[str]) -> None:
    assert oversized(source, "m.py") == expected
