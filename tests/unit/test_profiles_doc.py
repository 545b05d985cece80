"""docs/profiles.md's coverage tables: one per seed runbook, its counts equal to its rows, and every metric, alert
and remediator rule a row names real (documented in docs/metrics.md, raised by the profile's rule files, defined
in the profile's remediator.yml)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs/profiles.md"
HEADING = re.compile(r"^### Coverage: (?P<system>.+) \(seed (?P<seed>\d{3})\)$", re.MULTILINE)
COUNTS = re.compile(
    r"^\*\*(?P<stated>\d+) stated: (?P<covered>\d+) covered, (?P<not_covered>\d+) not covered, "
    r"(?P<pending>\d+) pending probe\.\*\*$",
    re.MULTILINE,
)
COLUMNS = ["#", "stated item (section)", "metric", "alert", "response", "coverage"]
TICKED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Row:
    number: str
    item: str
    metric: str
    alert: str
    response: str
    coverage: str


@dataclass(frozen=True)
class Table:
    system: str
    seed: str
    counts: dict[str, int]
    rows: tuple[Row, ...]


def cells(line: str) -> list[str]:
    """The cells of a Markdown table line (`|` inside backticks is not a separator)."""
    parts, current, ticked = [], "", False
    for char in line.strip().removeprefix("|").removesuffix("|"):
        if char == "`":
            ticked = not ticked
        if char == "|" and not ticked:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()]


def parse(text: str) -> list[Table]:
    """Every coverage table of the document, with its counts line and its rows."""
    tables = []
    headings = list(HEADING.finditer(text))
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        section_end = text.find("\n## ", heading.end())
        end = section_end if 0 <= section_end < end else end
        body = text[heading.end() : end]
        counts = COUNTS.search(body)
        assert counts is not None, f"{heading.group(0)}: no counts line"
        lines = [line for line in body.splitlines() if line.startswith("|")]
        assert lines, f"{heading.group(0)}: no table"
        assert cells(lines[0]) == COLUMNS, f"{heading.group(0)}: columns {cells(lines[0])}"
        rows = []
        for line in lines[2:]:
            found = cells(line)
            assert len(found) == len(COLUMNS), f"{heading.group(0)}: {line}"
            rows.append(Row(*found))
        tables.append(
            Table(
                heading.group("system"),
                heading.group("seed"),
                {k: int(v) for k, v in counts.groupdict().items()},
                tuple(rows),
            )
        )
    return tables


def profile_of(seed: str) -> str:
    for path in (ROOT / "deploy/profiles").glob("*/profile.yml"):
        if yaml.safe_load(path.read_text())["seed"] == seed:
            return path.parent.name
    raise AssertionError(f"no profile for seed {seed}")


def loaded_alerts(profile: str) -> set[str]:
    manifest = yaml.safe_load((ROOT / "deploy/profiles" / profile / "profile.yml").read_text())
    names = set(manifest.get("external_alerts", []))
    for name in manifest["rule_files"]:
        for group in yaml.safe_load((ROOT / "alert_rules" / name).read_text())["groups"]:
            names |= {rule["alert"] for rule in group["rules"] if "alert" in rule}
    return names


def remediator_names(profile: str) -> set[str]:
    """The profile's rule names and its top-level settings (a response may be `escalation.after_minutes`)."""
    config = yaml.safe_load((ROOT / "deploy/profiles" / profile / "remediator.yml").read_text())
    return {rule["name"] for rule in config["rules"]} | set(config)


def status(row: Row) -> str:
    if row.coverage == "covered":
        return "covered"
    if row.coverage == "pending probe":
        return "pending"
    assert row.coverage.startswith("not covered: "), f"row {row.number}: coverage {row.coverage!r}"
    assert len(row.coverage.removeprefix("not covered: ")) >= 20, f"row {row.number}: give the reason"
    return "not_covered"


TABLES = parse(DOC.read_text())


def test_there_is_one_coverage_table_per_seed_runbook() -> None:
    assert sorted(table.seed for table in TABLES) == ["000", "002", "003", "004"]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.seed)
def test_the_counts_at_the_top_equal_the_rows(table: Table) -> None:
    assert table.counts["stated"] == len(table.rows)
    assert [row.number for row in table.rows] == [str(n) for n in range(1, len(table.rows) + 1)]
    for kind in ("covered", "not_covered", "pending"):
        assert table.counts[kind] == sum(1 for row in table.rows if status(row) == kind), kind


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.seed)
def test_every_alert_a_row_names_is_raised_by_the_profiles_rule_files(table: Table) -> None:
    known = loaded_alerts(profile_of(table.seed))
    for row in table.rows:
        for name in TICKED.findall(row.alert):
            assert name in known, f"seed {table.seed} row {row.number}: no alert {name}"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.seed)
def test_every_metric_a_row_names_is_in_the_metrics_reference(table: Table) -> None:
    documented = set(TICKED.findall((ROOT / "docs/metrics.md").read_text()))
    for row in table.rows:
        for name in TICKED.findall(row.metric):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert {name, base, f"{base}_total"} & documented, f"seed {table.seed} row {row.number}: {name}"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.seed)
def test_every_response_a_row_names_is_a_rule_or_setting_of_the_profiles_remediator(table: Table) -> None:
    known = remediator_names(profile_of(table.seed))
    for row in table.rows:
        for name in TICKED.findall(row.response):
            assert name.split(".")[0] in known, f"seed {table.seed} row {row.number}: no rule {name}"


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.seed)
def test_a_covered_row_names_what_covers_it(table: Table) -> None:
    for row in table.rows:
        if status(row) == "covered":
            assert TICKED.search(row.metric + row.alert + row.response), f"seed {table.seed} row {row.number}"


def test_the_parser_reads_counts_rows_and_ticked_pipes() -> None:
    text = (
        "### Coverage: X (seed 001)\n\n**2 stated: 1 covered, 1 not covered, 0 pending probe.**\n\n"
        "| # | stated item (section) | metric | alert | response | coverage |\n|---|---|---|---|---|---|\n"
        "| 1 | a | `m` | `A` | `r` | covered |\n| 2 | b `x|y` | — | — | — | not covered: no such thing exists here |\n"
    )
    (table,) = parse(text)
    assert table.counts == {"stated": 2, "covered": 1, "not_covered": 1, "pending": 0}
    assert table.rows[1].item == "b `x|y`"
    assert [status(row) for row in table.rows] == ["covered", "not_covered"]
