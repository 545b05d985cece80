"""command: run an argv list without a shell (PM2 restart of one process, backup scripts, site scripts)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import Field, field_validator

from remediator.actions.base import Action, ActionParams, ActionResult, PermanentActionError, TransientActionError

OUTPUT_LIMIT = 4000


class CommandParams(ActionParams):
    argv: Annotated[tuple[Annotated[str, Field(min_length=1, max_length=4096)], ...], Field(min_length=1)]
    env_from_params: tuple[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], ...] = ()
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 300.0
    transient_exit_codes: tuple[int, ...] = ()

    @field_validator("argv")
    @classmethod
    def _no_restart_all(cls, argv: tuple[str, ...]) -> tuple[str, ...]:
        # Seed 004: restart one named process, never `pm2 restart all`.
        if "pm2" in os.path.basename(argv[0]) and "all" in argv[1:]:
            raise ValueError("pm2 ... all is refused: restart one named process")
        return argv


class CommandAction(Action):
    """Runs argv directly (no shell). Labels reach it only as environment variables named in env_from_params,
    whose values come from allowlisted label parameters; argv entries equal to `{param}` are filled the same way."""

    name = "command"
    params_model = CommandParams

    async def run(self, params: CommandParams, bound: Mapping[str, str]) -> ActionResult:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        for name in params.env_from_params:
            if name not in bound:
                raise PermanentActionError(f"env_from_params names {name!r}, which no label parameter binds")
            env[f"TRADEOPS_{name.upper()}"] = bound[name]
        argv = [
            bound[item[1:-1]] if item.startswith("{") and item.endswith("}") and item[1:-1] in bound else item
            for item in params.argv
        ]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
        except OSError as error:
            raise PermanentActionError(f"{argv[0]}: {error}") from error
        try:
            async with asyncio.timeout(params.timeout_seconds):
                output, _ = await process.communicate()
        except TimeoutError as error:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise TransientActionError(f"{argv[0]} timed out after {params.timeout_seconds}s") from error
        text = output.decode(errors="replace")
        text = text if len(text) <= OUTPUT_LIMIT else text[:OUTPUT_LIMIT] + f"... ({len(text)} characters)"
        if process.returncode != 0:
            error_type = (
                TransientActionError if process.returncode in params.transient_exit_codes else PermanentActionError
            )
            raise error_type(f"{argv[0]} exited {process.returncode}: {text}")
        return ActionResult(f"{argv[0]} exited 0: {text}")


def _fill(item: str, bound: Mapping[str, str]) -> str:
    """Replace an argv entry that is exactly `{param}` by the bound (allowlisted) value; nothing else."""
    if item.startswith("{") and item.endswith("}") and item[1:-1] in bound:
        return bound[item[1:-1]]
    return item
