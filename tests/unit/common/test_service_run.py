"""run_service, a service's process boundary: its main coroutine's end is exit 0, a taken port exit 1 with the
address logged, Ctrl-C exit 0; anything else is not swallowed."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

from common.service import run_service
from common.web import PortInUseError


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_a_main_that_ends_is_exit_0() -> None:
    ran: list[bool] = []

    async def main() -> None:
        ran.append(True)

    assert run_service("svc", main()) == 0
    assert ran == [True]


def test_a_taken_port_is_exit_1_and_logged_with_the_address(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        raise PortInUseError("127.0.0.1:10102 is already in use by another process")

    with caplog.at_level(logging.ERROR):
        assert run_service("svc", main()) == 1
    assert any("127.0.0.1:10102" in str(record.__dict__) for record in caplog.records)


def test_ctrl_c_is_exit_0() -> None:
    async def main() -> None:
        raise KeyboardInterrupt

    assert run_service("svc", main()) == 0


def test_any_other_failure_is_not_swallowed() -> None:
    async def main() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_service("svc", main())
