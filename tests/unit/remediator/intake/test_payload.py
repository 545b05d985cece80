"""The Alertmanager webhook payload (version 4): what is accepted, what is refused with a located problem, and the
incident key a resend shares."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import ValidationError

from remediator.intake.payload import WebhookAlert, parse_payload

STARTS = "2024-06-03T12:00:00Z"


def an_alert(**fields: Any) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "ServiceDown"},
        "startsAt": STARTS,
        "fingerprint": "ab12",
    } | fields


def payload(*alerts: dict[str, Any], **fields: Any) -> bytes:
    body = {"version": "4", "status": "firing", "alerts": list(alerts) or [an_alert()]} | fields
    return json.dumps(body).encode()


def problems(body: bytes | str) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as caught:
        parse_payload(body)
    return [tuple(error["loc"]) for error in caught.value.errors()]


def test_a_minimal_payload_is_accepted() -> None:
    document = parse_payload(payload())
    assert document["version"] == "4"
    assert document["alerts"][0]["startsAt"] == dt.datetime(2024, 6, 3, 12, tzinfo=dt.UTC)


def test_fields_a_newer_alertmanager_adds_are_tolerated() -> None:
    document = parse_payload(payload(an_alert(silencedBy=["x"]), newField={"a": 1}))
    assert "newField" not in document
    assert "silencedBy" not in document["alerts"][0]


def test_an_empty_alert_list_is_a_payload() -> None:
    assert parse_payload(b'{"version": "4", "status": "resolved", "alerts": []}')["alerts"] == []


@pytest.mark.parametrize("version", ["3", 4, "", None])
def test_any_other_version_is_refused(version: object) -> None:
    assert ("version",) in problems(payload(version=version))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "pending"),
        ("fingerprint", ""),
        ("fingerprint", "not-hex"),
        ("fingerprint", "a" * 65),
        ("fingerprint", "ab12\n"),
        ("startsAt", "yesterday"),
        ("labels", {"": "empty name"}),
        ("labels", {"alertname": "x" * 4097}),
        ("labels", {f"l{n}": "v" for n in range(129)}),
        ("labels", {"alertname": 1}),
        ("annotations", {"summary": "x" * 4097}),
    ],
)
def test_a_hostile_or_malformed_alert_is_refused_at_its_location(field: str, value: object) -> None:
    located = problems(payload(an_alert(**{field: value})))
    assert located
    assert all(loc[:3] == ("alerts", 0, field) for loc in located)


@pytest.mark.parametrize("missing", ["status", "labels", "startsAt", "fingerprint"])
def test_an_alert_without_a_required_field_is_refused(missing: str) -> None:
    alert = an_alert()
    del alert[missing]
    assert ("alerts", 0, missing) in problems(payload(alert))


def test_every_problem_of_a_payload_is_reported() -> None:
    located = problems(payload(an_alert(), an_alert(status="x"), an_alert(fingerprint="zz"), truncatedAlerts=-1))
    assert set(located) == {("truncatedAlerts",), ("alerts", 1, "status"), ("alerts", 2, "fingerprint")}


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b'{"version": "4"', "\ud800".encode("utf-8", "surrogatepass")]
)
def test_a_body_that_is_not_a_json_payload_is_refused(body: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_payload(body)


def test_an_alerts_own_status_counts_never_the_groups() -> None:
    document = parse_payload(payload(an_alert(status="resolved"), status="firing"))
    assert WebhookAlert.from_document(document["alerts"][0]).status == "resolved"


def test_a_resend_of_the_same_incident_has_the_same_key_whatever_its_case_and_time_zone() -> None:
    first = WebhookAlert.validate(an_alert(fingerprint="ab12"))
    resend = WebhookAlert.validate(an_alert(fingerprint="AB12", startsAt="2024-06-03T14:00:00+02:00"))
    assert first.incident_key == resend.incident_key == "ab12@2024-06-03T12:00:00+00:00"


def test_a_new_start_is_a_new_incident() -> None:
    first = WebhookAlert.validate(an_alert())
    again = WebhookAlert.validate(an_alert(startsAt="2024-06-03T12:00:01Z"))
    assert first.incident_key != again.incident_key


def test_the_alert_keeps_its_fields_and_its_labels_as_sorted_json() -> None:
    alert = WebhookAlert.validate(
        an_alert(labels={"b": "2", "a": "1"}, annotations={"s": "t"}, endsAt=STARTS, generatorURL="http://p/g")
    )
    assert alert.labels_json == '{"a": "1", "b": "2"}'
    assert (alert.annotations, alert.generatorURL) == ({"s": "t"}, "http://p/g")
    assert alert.endsAt == dt.datetime(2024, 6, 3, 12, tzinfo=dt.UTC)
    assert alert.name == ""


def test_optional_fields_default_when_absent() -> None:
    alert = WebhookAlert.validate(an_alert())
    assert (alert.annotations, alert.endsAt, alert.generatorURL, alert.name) == ({}, None, "", "ServiceDown")


@pytest.mark.parametrize("raw", [None, [], "alert", an_alert(fingerprint="g")])
def test_validate_refuses_what_is_not_an_alert(raw: object) -> None:
    with pytest.raises(ValidationError):
        WebhookAlert.validate(raw)
