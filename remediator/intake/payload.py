"""The Alertmanager webhook payload, version 4 (extra fields tolerated: newer Alertmanagers add some).

A payload is validated into typed dictionaries (pydantic TypedDicts: the same checks as models; why, see
docs/benchmarks.md), before the webhook answers. An alert becomes a WebhookAlert only when a worker takes it up.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal, NotRequired

from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter
from typing_extensions import TypedDict

LabelValue = Annotated[str, StringConstraints(max_length=4096)]
LabelName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Labels = Annotated[dict[LabelName, LabelValue], Field(max_length=128)]
Fingerprint = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9a-fA-F]+$")]
Status = Literal["firing", "resolved"]


class AlertDocument(TypedDict):
    """One alert of a group as validated; its own status counts, never the group's."""

    __pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[misc]

    status: Status
    labels: Labels
    annotations: NotRequired[Labels]
    startsAt: dt.datetime
    endsAt: NotRequired[dt.datetime | None]
    generatorURL: NotRequired[str]
    fingerprint: Fingerprint


class PayloadDocument(TypedDict):
    """Alertmanager's webhook body as validated."""

    __pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[misc]

    version: Literal["4"]
    groupKey: NotRequired[str]
    truncatedAlerts: NotRequired[Annotated[int, Field(ge=0)]]
    status: Status
    receiver: NotRequired[str]
    groupLabels: NotRequired[Labels]
    commonLabels: NotRequired[Labels]
    commonAnnotations: NotRequired[Labels]
    externalURL: NotRequired[str]
    alerts: list[AlertDocument]


PAYLOAD: TypeAdapter[PayloadDocument] = TypeAdapter(PayloadDocument)
ALERT: TypeAdapter[AlertDocument] = TypeAdapter(AlertDocument)


def parse_payload(body: bytes | str) -> PayloadDocument:
    """Validate a webhook body; raise pydantic's ValidationError, with every problem located, when it is not one."""
    return PAYLOAD.validate_json(body)


@dataclass(frozen=True, slots=True)
class WebhookAlert:
    """One alert as the engine decides it."""

    status: Status
    labels: Mapping[str, str]
    startsAt: dt.datetime  # noqa: N815 - Alertmanager's field name
    fingerprint: str
    annotations: Mapping[str, str] = field(default_factory=dict)
    endsAt: dt.datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    # The incident: (fingerprint, startsAt). A resend of the same incident has the same key.
    incident_key: str = field(init=False)
    # The labels as JSON with sorted keys, as the audit trail stores them.
    labels_json: str = field(init=False)

    def __post_init__(self) -> None:
        # Alertmanager's fingerprints are lower-case hex; a sender that upper-cases one names the same incident.
        key = f"{self.fingerprint.lower()}@{self.startsAt.astimezone(dt.UTC).isoformat()}"
        object.__setattr__(self, "incident_key", key)
        object.__setattr__(self, "labels_json", json.dumps(self.labels, sort_keys=True))

    @classmethod
    def from_document(cls, document: AlertDocument) -> WebhookAlert:
        """Wrap an alert validated with its payload."""
        return cls(
            document["status"],
            document["labels"],
            document["startsAt"],
            document["fingerprint"],
            document.get("annotations", {}),
            document.get("endsAt"),
            document.get("generatorURL", ""),
        )

    @classmethod
    def validate(cls, raw: object) -> WebhookAlert:
        """Validate one alert on its own (a JSON-like mapping); raise ValidationError when it is not one."""
        return cls.from_document(ALERT.validate_python(raw))

    @property
    def name(self) -> str:
        """The alert's name (empty when the label is missing)."""
        return self.labels.get("alertname", "")
