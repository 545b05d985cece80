"""Built-in actions: `log` (records only) and `http_request` (allowlisted URLs and methods)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import aiohttp
from pydantic import Field

from common.http import SharedSession
from common.http_auth import HttpAuth, HttpAuthError
from common.logs import log_event
from remediator.actions.base import (
    Action,
    ActionParams,
    ActionResult,
    PermanentActionError,
    TransientActionError,
)
from remediator.actions.urls import UrlError, allowed_url_prefix, canonical_url, fill_url_template

logger = logging.getLogger("remediator.actions")


class LogParams(ActionParams):
    message: Annotated[str, Field(max_length=1000)] = "remediation recorded"


class LogAction(Action):
    """Records that the rule matched; touches nothing."""

    name = "log"
    params_model = LogParams

    async def run(self, params: LogParams, bound: Mapping[str, str]) -> ActionResult:
        log_event(logger, logging.INFO, "log_action", message=params.message, **bound)
        return ActionResult(params.message, changed=False)


class EscalateParams(ActionParams):
    note: Annotated[str, Field(max_length=1000)] = "needs a human"


class EscalateAction(Action):
    """Touches nothing and hands the incident to a human at once (for alerts no robot should fix)."""

    name = "escalate"
    params_model = EscalateParams
    escalates = True

    async def run(self, params: EscalateParams, bound: Mapping[str, str]) -> ActionResult:
        return ActionResult(params.note, changed=False)


class IgnoreParams(ActionParams):
    note: Annotated[str, Field(max_length=1000)] = "ignored by configuration"


class IgnoreAction(Action):
    """Marks the alerts its rule matches as deliberately ignored: recorded, never acted on, never escalated. Only
    such an explicit rule makes an alert end without a remediation or a page."""

    name = "ignore"
    params_model = IgnoreParams

    async def run(self, params: IgnoreParams, bound: Mapping[str, str]) -> ActionResult:
        return ActionResult(params.note, changed=False)


class HttpRequestParams(ActionParams):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    json_body: dict[str, Any] | None = None
    expect_status: tuple[int, ...] = (200, 201, 202, 204)
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    # Bearer or basic for this target; the params (and so the audit) hold the file's path, never the secret.
    auth: HttpAuth | None = None


class HttpRequestAction(Action):
    """Calls an HTTP endpoint of the platform. The URL, after `{label}` placeholders are filled with
    allowlisted label values (path-quoted) and it is normalised, must lie within one of the configured URL
    prefixes; the normalised URL is the one called."""

    name = "http_request"
    params_model = HttpRequestParams

    def __init__(self, allowed_url_prefixes: tuple[str, ...], http: SharedSession) -> None:
        self.allowed_url_prefixes = allowed_url_prefixes
        self._prefixes = tuple(allowed_url_prefix(prefix) for prefix in allowed_url_prefixes)
        self.http = http

    def resolve_url(self, template: str, bound: Mapping[str, str]) -> str:
        """Fill placeholders with quoted values, put the URL in canonical form (remediator/actions/urls.py) and
        return that form if it lies within an allowed prefix on a path-segment boundary."""
        try:
            url = fill_url_template(template, bound)
        except UrlError as error:
            raise PermanentActionError(str(error)) from None
        if "{" in url or "}" in url:
            raise PermanentActionError(f"URL {url!r} has a placeholder no declared label fills")
        try:
            canonical = canonical_url(url)
        except UrlError as error:
            raise PermanentActionError(f"URL {url!r} is refused: {error}") from None
        if not any(canonical.within(prefix) for prefix in self._prefixes):
            raise PermanentActionError(f"URL {url!r} ({canonical}) is outside the allowed URL prefixes")
        return str(canonical)

    async def run(self, params: HttpRequestParams, bound: Mapping[str, str]) -> ActionResult:
        url = self.resolve_url(params.url, bound)
        try:
            headers = params.auth.headers() if params.auth is not None else None
        except HttpAuthError as error:  # names the file and why, never its content
            raise PermanentActionError(f"{params.method} {url}: {error}") from None
        try:
            async with self.http.get().request(
                params.method,
                url,
                headers=headers,
                json=params.json_body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=params.timeout_seconds),
            ) as response:
                text = (await response.content.read(4096)).decode(errors="replace")
                status = response.status
        except (aiohttp.ClientConnectionError, TimeoutError) as error:
            raise TransientActionError(f"{params.method} {url}: {error!r}") from error
        if status >= 500:
            raise TransientActionError(f"{params.method} {url} answered {status}: {text[:200]}")
        if status not in params.expect_status:
            raise PermanentActionError(f"{params.method} {url} answered {status}: {text[:200]}")
        return ActionResult(f"{params.method} {url} -> {status}")
