"""alertmanager_silence: silence an alert while its remediation settles, expiring by itself."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Annotated

import aiohttp
from pydantic import Field

from common.http import SharedSession
from remediator.actions.base import Action, ActionParams, ActionResult, PermanentActionError, TransientActionError


class SilenceParams(ActionParams):
    alertname: Annotated[str, Field(min_length=1, max_length=256)]
    match_labels: dict[str, Annotated[str, Field(max_length=1024)]] = Field(default_factory=dict)
    duration_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 15.0
    comment: Annotated[str, Field(max_length=1000)] = "tradeops: remediation settling"


class AlertmanagerSilenceAction(Action):
    """Creates a silence with equality matchers (never regex), ending after duration_minutes."""

    name = "alertmanager_silence"
    params_model = SilenceParams

    def __init__(self, alertmanager_url: str | None, http: SharedSession) -> None:
        self.url = alertmanager_url
        self.http = http

    async def run(self, params: SilenceParams, bound: Mapping[str, str]) -> ActionResult:
        if self.url is None:
            raise PermanentActionError("no Alertmanager configured (backends.alertmanager_url)")
        start = dt.datetime.now(dt.UTC)
        matchers = [{"name": "alertname", "value": params.alertname, "isRegex": False, "isEqual": True}]
        matchers += [
            {"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in sorted(params.match_labels.items())
        ]
        body = {
            "matchers": matchers,
            "startsAt": start.isoformat(),
            "endsAt": (start + dt.timedelta(minutes=params.duration_minutes)).isoformat(),
            "createdBy": "tradeops-remediator",
            "comment": params.comment,
        }
        try:
            async with self.http.get().post(
                f"{self.url.rstrip('/')}/api/v2/silences", json=body, timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                text = (await response.content.read(64 * 1024)).decode(errors="replace")
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TransientActionError(f"Alertmanager: {error!r}") from error
        try:
            answer: object = json.loads(text)
        except json.JSONDecodeError:
            answer = None  # a proxy's error page, say: judged by its status below
        if status >= 500:
            raise TransientActionError(f"Alertmanager answered {status}: {text[:200]}")
        if status != 200:
            raise PermanentActionError(f"Alertmanager refused the silence ({status}): {answer or text[:500]}")
        if answer is None:
            raise TransientActionError(f"Alertmanager answered 200 with no JSON: {text[:200]}")
        silence = answer.get("silenceID") if isinstance(answer, dict) else None
        return ActionResult(f"silence {silence} for {params.duration_minutes} min")
