"""The read pages' WHERE clauses, built once for both audit stores: each store names its dialect (placeholders,
the SQL of the incident record's JSON fields, how a time is passed) and gets the same conditions. Every
condition is constant text; every value is a parameter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from remediator.audit.reads import AuditQuery, IncidentQuery, state_condition, utc


@dataclass(frozen=True)
class Dialect:
    """How one store spells what the conditions need."""

    placeholder: str  # before a parameter's number: "$" (PostgreSQL) or "?" (SQLite's ?NNN)
    escalated: str  # the incident record's escalated flag, true or false
    attempts: str  # its attempt count
    alertname: str
    rule: str
    priority: str  # its labels' priority
    audit_priority: str  # an audit entry's labels' priority
    time: Callable[[dt.datetime], Any]  # a UTC time as the store compares it


@dataclass
class Where:
    """Conditions joined by AND, with their parameters in order."""

    dialect: Dialect
    conditions: list[str] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def param(self, value: Any) -> str:
        """Add a parameter; return its placeholder."""
        self.values.append(value)
        return f"{self.dialect.placeholder}{len(self.values)}"

    def equal(self, expression: str, value: Any) -> None:
        """Add `expression = value`, unless value is None (no filter)."""
        if value is not None:
            self.conditions.append(f"{expression} = {self.param(value)}")

    def compare(self, expression: str, operator: str, value: Any) -> None:
        """Add `expression <operator> value` (a time in the store's form), unless value is None."""
        if value is not None:
            shown = self.dialect.time(utc(value)) if isinstance(value, dt.datetime) else value
            self.conditions.append(f"{expression} {operator} {self.param(shown)}")

    def sql(self) -> str:
        """The WHERE clause (with its leading space), or nothing when there is no condition."""
        return " WHERE " + " AND ".join(self.conditions) if self.conditions else ""


def incident_where(query: IncidentQuery, dialect: Dialect) -> Where:
    """The conditions of an incident page: its state, alert name, rule, priority, update window and position."""
    where = Where(dialect)
    if query.state is not None:
        where.conditions.append(state_condition(query.state, dialect.escalated, dialect.attempts))
    where.equal(dialect.alertname, query.alertname)
    where.equal(dialect.rule, query.rule)
    where.equal(dialect.priority, query.priority)
    where.compare("updated_at", ">=", query.since)
    where.compare("updated_at", "<", query.until)
    if query.after is not None:
        rank, stamp = where.param(query.after.closed), where.param(dialect.time(utc(query.after.updated_at)))
        key = where.param(query.after.key)
        where.conditions.append(
            f"((state = 'closed') > {rank} OR ((state = 'closed') = {rank} AND "
            f"(updated_at < {stamp} OR (updated_at = {stamp} AND key < {key}))))"
        )
    return where


def audit_where(query: AuditQuery, dialect: Dialect) -> Where:
    """The conditions of an audit page: its incident, names, event, decision, priority, time window and ids."""
    where = Where(dialect)
    for column, value in (
        ("incident", query.incident),
        ("alertname", query.alertname),
        ("rule", query.rule),
        ("event", query.event),
        ("decision", query.decision),
        (dialect.audit_priority, query.priority),
    ):
        where.equal(column, value)
    where.compare("at", ">=", query.since)
    where.compare("at", "<", query.until)
    where.compare("id", "<", query.before_id)
    where.compare("id", ">", query.above_id)
    return where
