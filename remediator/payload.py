"""The Alertmanager webhook payload, version 4 (extra fields tolerated: newer Alertmanagers add some)."""

from __future__ import annotations

import datetime as dt
import json
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

LabelValue = Annotated[str, StringConstraints(max_length=4096)]
LabelName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Labels = Annotated[dict[LabelName, LabelValue], Field(max_length=128)]


class WebhookAlert(BaseModel):
    """One alert of a group; its own status counts, never the group's."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: Labels = Field(default_factory=dict)
    startsAt: dt.datetime  # noqa: N815 - Alertmanager's field name
    endsAt: dt.datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9a-fA-F]+$")]

    @cached_property
    def incident_key(self) -> str:
        """The incident: (fingerprint, startsAt). A resend of the same incident has the same key."""
        return f"{self.fingerprint}@{self.startsAt.astimezone(dt.UTC).isoformat()}"

    @cached_property
    def labels_json(self) -> str:
        """The labels as JSON with sorted keys, as the audit trail stores them."""
        return json.dumps(self.labels, sort_keys=True)

    @property
    def name(self) -> str:
        """The alert's name (empty when the label is missing)."""
        return self.labels.get("alertname", "")


class WebhookPayload(BaseModel):
    """Alertmanager's webhook body."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal["4"]
    groupKey: str = ""  # noqa: N815
    truncatedAlerts: Annotated[int, Field(ge=0)] = 0  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: Labels = Field(default_factory=dict)  # noqa: N815
    commonLabels: Labels = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: Labels = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[WebhookAlert]
