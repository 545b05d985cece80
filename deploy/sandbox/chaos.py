"""The chaos API: POST /chaos/<fault> injects, GET /chaos lists what is still active, DELETE /chaos clears."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from common.config import validation_details
from common.logs import log_event
from common.web import json_error
from sandbox.backends import BackendUnavailableError
from sandbox.context import SandboxContext
from sandbox.faults import Fault, FaultError, FaultParams, fault_catalogue

logger = logging.getLogger("sandbox.chaos")
MAX_BODY = 64 * 1024


@dataclass
class InjectedFault:
    """A fault that was injected and has not been seen cleared yet."""

    fault: Fault
    params: FaultParams
    injected_at: dt.datetime
    facts: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        """Return the fault as the chaos API lists it."""
        return {
            "fault": self.fault.name,
            "target": self.params.target(),
            "params": self.params.model_dump(mode="json"),
            "injected_at": self.injected_at.isoformat(),
            "facts": self.facts,
        }


@dataclass
class Chaos:
    """The faults of one sandbox: injecting, listing (pruning those the real component shows cleared), clearing."""

    ctx: SandboxContext
    after_change: Callable[[], Awaitable[None]]
    catalogue: dict[str, Fault] = field(default_factory=fault_catalogue)
    injected: dict[tuple[str, str], InjectedFault] = field(default_factory=dict)

    async def inject(self, name: str, params: FaultParams) -> InjectedFault:
        """Inject one fault and remember it."""
        fault = self.catalogue[name]
        facts = await fault.inject(self.ctx, params)
        record = InjectedFault(fault, params, dt.datetime.now(dt.UTC), facts)
        self.injected[(name, params.target())] = record
        await self.after_change()
        log_event(logger, logging.INFO, "fault_injected", fault=name, target=params.target())
        return record

    async def active(self) -> list[InjectedFault]:
        """Return the faults still present on their real component, forgetting the ones that were fixed."""
        still: list[InjectedFault] = []
        for key, record in list(self.injected.items()):
            if await record.fault.active(self.ctx, record.params):
                still.append(record)
            else:
                del self.injected[key]
                log_event(logger, logging.INFO, "fault_cleared_by_component", fault=key[0], target=key[1])
        return still

    async def clear_all(self) -> int:
        """Clear every injected fault on its real component; return how many were cleared."""
        count = 0
        for key, record in list(self.injected.items()):
            await record.fault.clear(self.ctx, record.params)
            del self.injected[key]
            count += 1
        await self.after_change()
        return count


CHAOS = web.AppKey("chaos", Chaos)


async def list_faults(request: web.Request) -> web.Response:
    """GET /chaos: the active faults and the catalogue of faults that can be injected."""
    chaos = request.app[CHAOS]
    try:
        active = [record.describe() for record in await chaos.active()]
    except BackendUnavailableError as error:
        return json_error(503, str(error))
    catalogue = {
        name: {"description": fault.description, "params": fault.params_model.model_json_schema()}
        for name, fault in chaos.catalogue.items()
    }
    return web.json_response({"active": active, "faults": catalogue})


async def inject_fault(request: web.Request) -> web.Response:
    """POST /chaos/{fault}: inject one fault; 404 unknown fault, 400 bad JSON, 422 bad parameters."""
    chaos = request.app[CHAOS]
    name = request.match_info["fault"]
    fault = chaos.catalogue.get(name)
    if fault is None:
        return json_error(404, f"unknown fault {name!r}", known=sorted(chaos.catalogue))
    raw = await request.read()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return json_error(400, f"body is not valid JSON: {error}")
    if not isinstance(body, dict):
        return json_error(400, "body must be a JSON object")
    try:
        params = fault.params_model.model_validate(body)
    except ValidationError as error:
        details = [str(d) for d in validation_details(error)]
        return json_error(422, f"invalid parameters for {name}", details=details)
    try:
        record = await chaos.inject(name, params)
    except FaultError as error:
        return json_error(error.status, str(error))
    except BackendUnavailableError as error:
        return json_error(503, str(error))
    return web.json_response(record.describe(), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /chaos: clear every injected fault on its real component."""
    try:
        cleared = await request.app[CHAOS].clear_all()
    except BackendUnavailableError as error:
        return json_error(503, str(error))
    return web.json_response({"cleared": cleared})


def build_chaos_app(chaos: Chaos) -> web.Application:
    """Build the control app serving the chaos API."""
    app = web.Application(client_max_size=MAX_BODY)
    app[CHAOS] = chaos
    app.router.add_get("/chaos", list_faults)
    app.router.add_post("/chaos/{fault}", inject_fault)
    app.router.add_delete("/chaos", clear_faults)
    return app
