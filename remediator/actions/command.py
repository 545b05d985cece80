"""command: run an argv list without a shell (PM2 restart of one process, backup scripts, site scripts).

The command runs in a process group of its own. When it exits, times out, or is cancelled (the rule's deadline),
the whole group is ended: SIGTERM, a short grace for the command itself, then SIGKILL to every process left in
the group. Its output is read as it comes, so what it printed so far is in the error of a killed command.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
from collections.abc import Mapping
from typing import Annotated

from pydantic import Field, field_validator

from remediator.actions.base import Action, ActionParams, ActionResult, PermanentActionError, TransientActionError

OUTPUT_LIMIT = 4000
# How long a command has to end on SIGTERM before its whole process group gets SIGKILL.
KILL_GRACE_SECONDS = 1.0
# How long the rest of the output may take to arrive once the group is dead (only a process that left the
# group, with setsid, can hold the pipe longer; its output is then not waited for).
DRAIN_SECONDS = 1.0
READ_CHUNK = 65536


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


class Output:
    """A command's output as it arrives: the first OUTPUT_LIMIT characters kept, the rest only counted."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._head: list[str] = []
        self._kept = 0
        self.characters = 0

    def feed(self, data: bytes, final: bool = False) -> None:
        """Take the next bytes of output."""
        text = self._decoder.decode(data, final)
        self.characters += len(text)
        if self._kept < self.limit:
            piece = text[: self.limit - self._kept]
            self._head.append(piece)
            self._kept += len(piece)

    def text(self) -> str:
        """The output so far, bounded: truncated ones say how long they were."""
        head = "".join(self._head)
        return head if self.characters <= self.limit else f"{head}... ({self.characters} characters)"


async def _read(stream: asyncio.StreamReader, output: Output) -> None:
    while chunk := await stream.read(READ_CHUNK):
        output.feed(chunk)
    output.feed(b"", final=True)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def end_group(process: asyncio.subprocess.Process, grace: float = KILL_GRACE_SECONDS) -> None:
    """End the command's process group: SIGTERM, up to `grace` for the command to exit, then SIGKILL to every
    process still in the group; the command is reaped. A second cancellation meanwhile still sends SIGKILL."""
    pgid = process.pid  # start_new_session: the command leads its own group
    try:
        if process.returncode is None:
            _signal_group(pgid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await process.wait()
    finally:
        _signal_group(pgid, signal.SIGKILL)
    await process.wait()


async def _drain(reader: asyncio.Task[None]) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):
            await asyncio.shield(reader)
    if not reader.done():
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


class CommandAction(Action):
    """Runs argv directly (no shell). Labels reach it only as environment variables named in env_from_params,
    whose values come from allowlisted label parameters; argv entries equal to `{param}` are filled the same way.
    Nothing the command started outlives it: its process group is killed when it exits, times out or is
    cancelled."""

    name = "command"
    params_model = CommandParams

    async def run(self, params: CommandParams, bound: Mapping[str, str]) -> ActionResult:
        env = _environment(params, bound)
        argv = [_fill(item, bound) for item in params.argv]
        process, read_fd = await _spawn(argv, env)
        output = Output()
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        transport: asyncio.ReadTransport | None = None
        reader: asyncio.Task[None] | None = None
        try:
            try:
                async with asyncio.timeout(params.timeout_seconds):
                    stream = asyncio.StreamReader()
                    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
                        lambda: asyncio.StreamReaderProtocol(stream), pipe
                    )
                    reader = asyncio.create_task(_read(stream, output))
                    await process.wait()
            finally:
                # Exited, timed out or cancelled: whatever is left of its process group is ended now.
                await end_group(process)
                if reader is not None:
                    await _drain(reader)
                if transport is not None:
                    transport.close()
                else:
                    pipe.close()
        except TimeoutError as error:
            raise TransientActionError(
                f"{argv[0]} timed out after {params.timeout_seconds}s; killed its process group; "
                f"output so far: {output.text()}"
            ) from error
        except asyncio.CancelledError as error:
            # The rule's deadline (or a stop): the cancellation goes on, carrying what the command printed.
            raise asyncio.CancelledError(
                f"{argv[0]} stopped by its deadline; killed its process group; output so far: {output.text()}"
            ) from error
        text = output.text()
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


def _environment(params: CommandParams, bound: Mapping[str, str]) -> dict[str, str]:
    """The command's whole environment: PATH, LANG and the label parameters env_from_params names, no more."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    for name in params.env_from_params:
        if name not in bound:
            raise PermanentActionError(f"env_from_params names {name!r}, which no label parameter binds")
        env[f"TRADEOPS_{name.upper()}"] = bound[name]
    return env


async def _spawn(argv: list[str], env: dict[str, str]) -> tuple[asyncio.subprocess.Process, int]:
    """Start argv leading a process group of its own, stdout and stderr into a new pipe; return it and the pipe's
    read end (PermanentActionError when it cannot start)."""
    # The output goes to a pipe of our own, not asyncio's: on Python 3.11 a process's wait() returns only once
    # its pipes close, and a process it left behind may hold them open.
    read_fd, write_fd = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    except OSError as error:
        os.close(read_fd)
        raise PermanentActionError(f"{argv[0]}: {error}") from error
    finally:
        os.close(write_fd)
    return process, read_fd
