"""A command run without a shell: exit code and numbers from its output (e.g. `pm2 jlist`, backup scripts)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal

from exporter.config import CommandConfig
from exporter.probes.base import Probe, ProbeError
from exporter.probes.http import finite_number, lookup
from exporter.sink import MetricSink


class CommandProbe(Probe):
    """Runs argv (never a shell), bounded by its timeout, and reports its exit code and parsed values."""

    kind = "command"

    def __init__(self, config: CommandConfig) -> None:
        super().__init__(config.name, config.timeout_seconds)
        self.config = config

    async def collect(self, sink: MetricSink) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                *self.config.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # its own process group: a timeout ends what it started too
            )
        except OSError as error:
            raise ProbeError("spawn", f"{self.config.argv[0]}: {error}") from error
        finished = False
        try:
            assert process.stdout is not None
            output = await _read_bounded(process.stdout, self.config.max_output_bytes + 1)
            if len(output) > self.config.max_output_bytes:  # killed below: a writer blocked on the pipe never exits
                raise ProbeError("too_large", f"output larger than {self.config.max_output_bytes} bytes")
            exit_code = await process.wait()
            finished = True
        finally:
            if not finished:
                await _end(process)
        labels = {"command": self.target}
        sink.gauge("tradeops_command_exit_code", "Exit code of the command's last run.", labels, exit_code)
        if self.config.output == "number":
            try:
                value = float(output.decode().strip())
            except (UnicodeDecodeError, ValueError) as error:
                raise ProbeError("bad_output", "output is not a number") from error
            sink.gauge(
                "tradeops_command_value",
                "A number read from the command's output.",
                {**labels, "item": "", "field": "value"},
                value,
            )
        elif self.config.output == "json":
            self._json_values(sink, output, labels)

    def _json_values(self, sink: MetricSink, output: bytes, labels: dict[str, str]) -> None:
        spec = self.config.json_values
        assert spec is not None
        try:
            document = json.loads(output)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ProbeError("bad_output", f"output is not JSON: {error}") from error
        items = lookup(document, spec.list_path)
        if not isinstance(items, list):
            raise ProbeError("bad_output", f"{spec.list_path or 'the output'} is not a list")
        series = 0
        for item in items:
            item_label = str(lookup(item, spec.label_field))[:128]
            for field_name, path in spec.value_fields.items():
                value = finite_number(lookup(item, path))
                if value is None:
                    continue
                if series >= self.config.max_series:
                    sink.dropped_series += 1
                    continue
                sink.gauge(
                    "tradeops_command_value",
                    "A number read from the command's output.",
                    {**labels, "item": item_label, "field": field_name},
                    value,
                )
                series += 1


async def _end(process: asyncio.subprocess.Process) -> None:
    """Kill the command's process group (a child holding its output open too), read what is left in the pipe
    (wait() returns only once the pipe is closed) and reap it; a second of this at most."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1):
            while process.stdout is not None and await process.stdout.read(1 << 16):
                pass
            await process.wait()


async def _read_bounded(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Read until EOF or `limit` bytes, whichever comes first (one read returns at most what the pipe holds)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
