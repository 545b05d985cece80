"""The command action without a shell: its parameters (pm2 ... all refused), labels reaching it only through
allowlisted parameters (argv entries exactly `{param}`, env_from_params), its bounded output, and its exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from remediator.actions.base import PermanentActionError, TransientActionError
from remediator.actions.command import CommandAction, CommandParams, Output

PY = sys.executable


@pytest.mark.parametrize(
    "argv",
    [("pm2", "restart", "all"), ("/usr/local/bin/pm2", "restart", "all"), ("npx-pm2", "stop", "all")],
)
def test_pm2_on_all_processes_is_refused(argv: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError, match=r"pm2 \.\.\. all is refused"):
        CommandParams(argv=argv)


@pytest.mark.parametrize("argv", [("pm2", "restart", "api"), ("pm2", "restart", "allocator"), ("echo", "all")])
def test_pm2_on_one_named_process_is_allowed(argv: tuple[str, ...]) -> None:
    assert CommandParams(argv=argv).argv == argv


@pytest.mark.parametrize("fields", [{"argv": ()}, {"argv": ("",)}, {"argv": ("x",), "env_from_params": ("1X",)}])
def test_malformed_parameters_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CommandParams.model_validate(fields)


def test_output_is_kept_whole_up_to_its_limit() -> None:
    output = Output(limit=10)
    output.feed(b"0123456789")
    output.feed(b"", final=True)
    assert output.text() == "0123456789"


def test_output_past_its_limit_is_cut_and_says_how_long_it_was() -> None:
    output = Output(limit=4)
    for chunk in (b"ab", b"cdef", b"ghij"):
        output.feed(chunk)
    output.feed(b"", final=True)
    assert output.text() == "abcd... (10 characters)"


def test_output_decodes_characters_split_across_reads() -> None:
    output = Output()
    data = "é€".encode()
    for n in range(len(data)):
        output.feed(data[n : n + 1])
    output.feed(b"", final=True)
    assert output.text() == "é€"


def test_invalid_utf8_output_is_replaced_not_an_error() -> None:
    output = Output()
    output.feed(b"ok \xff\xfe end")
    output.feed(b"\xe2\x82", final=True)  # a character cut off at the end
    assert output.text() == "ok \ufffd\ufffd end\ufffd"


async def test_labels_reach_the_command_only_as_allowlisted_parameters(tmp_path: Path) -> None:
    hostile = "api; touch " + str(tmp_path / "pwned") + " $(id)"
    params = CommandParams(
        argv=(PY, "-c", "import os, sys; print(sys.argv[1:], os.environ['TRADEOPS_PROCESS'])", "{process}", "{other}"),
        env_from_params=("process",),
    )
    result = await CommandAction().run(params, {"process": hostile})
    assert result.detail == f"{PY} exited 0: [{hostile!r}, '{{other}}'] {hostile}\n"
    assert not (tmp_path / "pwned").exists()


async def test_the_command_does_not_inherit_the_remediators_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEOPS_WEBHOOK_TOKEN", "secret-token")
    params = CommandParams(argv=(PY, "-c", "import os; print(sorted(os.environ))"))
    result = await CommandAction().run(params, {})
    assert "secret-token" not in result.detail
    assert "TRADEOPS_WEBHOOK_TOKEN" not in result.detail


async def test_an_env_parameter_no_label_binds_is_a_permanent_error() -> None:
    params = CommandParams(argv=(PY, "-c", "pass"), env_from_params=("process",))
    with pytest.raises(PermanentActionError, match="'process', which no label parameter binds"):
        await CommandAction().run(params, {})


async def test_a_listed_exit_code_is_transient_any_other_permanent() -> None:
    failing = (PY, "-c", "import sys; print('busy'); sys.exit(75)")
    with pytest.raises(TransientActionError, match="exited 75: busy"):
        await CommandAction().run(CommandParams(argv=failing, transient_exit_codes=(75,)), {})
    with pytest.raises(PermanentActionError, match="exited 75: busy"):
        await CommandAction().run(CommandParams(argv=failing, transient_exit_codes=(1,)), {})


async def test_stderr_is_part_of_the_output() -> None:
    params = CommandParams(argv=(PY, "-c", "import sys; sys.stderr.write('oops'); sys.exit(2)"))
    with pytest.raises(PermanentActionError, match="exited 2: oops"):
        await CommandAction().run(params, {})


async def test_a_program_that_cannot_start_is_a_permanent_error(tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(PermanentActionError, match="not-executable"):
        await CommandAction().run(CommandParams(argv=(str(script),)), {})
