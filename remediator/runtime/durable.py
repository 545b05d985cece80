"""Waiting for the audit store once an alert was acknowledged: its journal, its done marker and its pages must be
recorded, so a write the store refuses (PostgreSQL down, restarting or hanging) is tried again until it is taken.

Before the acknowledgement the webhook answers 503 instead (remediator/intake/accept.py): Alertmanager resends.
After it, nothing but this process holds the alert's outcome, so it is never dropped: the worker (and the
incident's lock, renewed while held) waits, each failure logged and counted, until the store takes the write or
the process stops (the alert then stays pending in the inbox and is resumed at the next start).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from common.logs import log_event
from remediator.state.base import AuditUnavailableError

logger = logging.getLogger("remediator.runtime")
T = TypeVar("T")
FIRST_WAIT_SECONDS = 0.5
LONGEST_WAIT_SECONDS = 5.0


async def until_recorded(write: Callable[[], Awaitable[T]], what: str, failed: Callable[[], None] | None = None) -> T:
    """Run `write` until it does not raise AuditUnavailableError (backoff with jitter, 0.5 s up to 5 s between
    tries) and return its result; each refusal is logged and, with `failed`, counted."""
    wait = FIRST_WAIT_SECONDS
    while True:
        try:
            return await write()
        except AuditUnavailableError as error:
            log_event(
                logger, logging.WARNING, "audit_store_waiting", what=what, retry_in=round(wait, 2), error=str(error)
            )
            if failed is not None:
                failed()
        await asyncio.sleep(wait * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not a secret
        wait = min(LONGEST_WAIT_SECONDS, wait * 2)
