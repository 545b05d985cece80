"""The OpenAPI 3.0 document of the remediator's read API (served at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from remediator.api.views import AUDIT_LIMIT, INCIDENT_LIMIT, SHOWN_STATES

TEXT = {"type": "string", "maxLength": 4096, "pattern": "^[^\\u0000]*$"}  # the API refuses NUL in a filter
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {**TIME, "nullable": True}
NULLABLE_TEXT = {"type": "string", "nullable": True}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema or TEXT}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


COMMON = [
    _query("alertname", "the alert's name"),
    _query("rule", "the rule's name"),
    _query("priority", "the alert's priority label"),
    _query("since", "updated (incidents) or recorded (entries) at or after this time", TIME),
    _query("until", "updated (incidents) or recorded (entries) before this time", TIME),
    _query("cursor", "the next_cursor of the previous page", {"type": "string", "maxLength": 1024}),
]

STATE = _query(
    "state",
    "the incident's state (open: every open one, verifying and waiting_approval among them)",
    {"type": "string", "enum": list(SHOWN_STATES)},
)

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "Incident": {
        "type": "object",
        "required": ["id", "alert_key", "alertname", "rule", "state", "attempts", "escalated", "labels"],
        "properties": {
            "id": {"type": "string", "description": "the incident key: fingerprint@startsAt#rule"},
            "alert_key": {"type": "string", "description": "fingerprint@startsAt, the audit entries' incident"},
            "alertname": {"type": "string"},
            "rule": NULLABLE_TEXT,
            "state": {
                "type": "string",
                "enum": list(SHOWN_STATES),
                "description": (
                    "waiting: open, nothing run yet; acting: its action ran; verifying: a step's verification "
                    "watches it; waiting_approval: a step waits for a human's approval"
                ),
            },
            "attempts": {"type": "integer", "minimum": 0},
            "escalated": {"type": "boolean"},
            "escalation_reason": NULLABLE_TEXT,
            "target": NULLABLE_TEXT,
            "labels": LABELS,
            "last_attempt_at": NULLABLE_TIME,
            "retry_at": NULLABLE_TIME,
            "escalate_at": NULLABLE_TIME,
            "updated_at": NULLABLE_TIME,
        },
    },
    "AuditEntry": {
        "type": "object",
        "required": ["id", "at", "incident", "alertname", "status", "event", "labels"],
        "properties": {
            "id": {"type": "integer"},
            "at": TIME,
            "replica": {"type": "string"},
            "incident": {"type": "string"},
            "alertname": {"type": "string"},
            "status": {"type": "string", "enum": ["firing", "resolved"]},
            "event": {"type": "string"},
            "rule": NULLABLE_TEXT,
            "decision": NULLABLE_TEXT,
            "detail": NULLABLE_TEXT,
            "labels": LABELS,
        },
    },
    "Page": {
        "type": "object",
        "description": "one outbox record: a page (trigger) or its resolve, and how its delivery went",
        "required": ["id", "channel", "kind", "state", "attempts", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "channel": {"type": "string"},
            "kind": {"type": "string", "enum": ["trigger", "resolve"]},
            "reason": {"type": "string"},
            "state": {"type": "string", "enum": ["pending", "delivered", "cancelled", "superseded"]},
            "attempts": {"type": "integer", "minimum": 0},
            "created_at": TIME,
            "next_attempt_at": NULLABLE_TIME,
            "delivered_at": NULLABLE_TIME,
            "last_error": NULLABLE_TEXT,
            "coalesced": {"type": "boolean"},
        },
    },
    "IncidentPage": {
        "type": "object",
        "required": ["incidents", "next_cursor"],
        "properties": {
            "incidents": {"type": "array", "items": {"$ref": "#/components/schemas/Incident"}},
            "next_cursor": NULLABLE_TEXT,
        },
    },
    "IncidentDetail": {
        "type": "object",
        "required": ["incident", "alert", "timeline", "pages"],
        "properties": {
            "incident": {"$ref": "#/components/schemas/Incident"},
            "alert": {
                "type": "object",
                "nullable": True,
                "description": "the alert as it last came (from the stored payloads; null once they are pruned)",
                "properties": {
                    "annotations": LABELS,
                    "generator_url": {"type": "string"},
                    "alertmanager_url": {"type": "string"},
                    "status": {"type": "string"},
                },
            },
            "timeline": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
            "pages": {"type": "array", "items": {"$ref": "#/components/schemas/Page"}},
        },
    },
    "RemediationPage": {
        "type": "object",
        "required": ["remediations", "next_cursor"],
        "properties": {
            "remediations": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
            "next_cursor": NULLABLE_TEXT,
        },
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy)."""
    unauthorized = _error("missing or invalid bearer token")
    bad = _error("an invalid parameter")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "tradeops remediator read API",
            "version": "1",
            "description": "What the remediator received, decided, did and paged. Read-only.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/incidents": {
                "get": {
                    "operationId": "listIncidents",
                    "summary": "incidents, open first, then by last update (newest first)",
                    "parameters": [
                        STATE,
                        _query("target", "the target its rule acts on"),
                        *COMMON,
                        _query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": INCIDENT_LIMIT}),
                    ],
                    "responses": {"200": _ok("a page", "IncidentPage"), "400": bad, "401": unauthorized},
                }
            },
            "/api/v1/incidents/{id}": {
                "get": {
                    "operationId": "getIncident",
                    "summary": "one incident with its timeline (audit entries) and pages (outbox records)",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "200": _ok("the incident", "IncidentDetail"),
                        "401": unauthorized,
                        "404": _error("no such incident"),
                    },
                }
            },
            "/api/v1/remediations": {
                "get": {
                    "operationId": "listRemediations",
                    "summary": "the audit trail, newest first",
                    "parameters": [
                        _query("incident", "the alert's incident key, fingerprint@startsAt"),
                        _query("event", "received, decision, action, escalated, escalation_resolved, timer"),
                        _query("decision", "the decision's reason, e.g. executed, ignored, no_rule"),
                        *COMMON,
                        _query("limit", "page size", {"type": "integer", "minimum": 1, "maximum": AUDIT_LIMIT}),
                    ],
                    "responses": {"200": _ok("a page", "RemediationPage"), "400": bad, "401": unauthorized},
                }
            },
        },
    }
