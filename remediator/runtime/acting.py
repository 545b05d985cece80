"""Running one admitted action: a concurrency slot, one deadline over its retries, its outcome recorded."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from common.logs import log_event
from remediator.actions.base import PermanentActionError, TransientActionError
from remediator.config import CircuitBreakerConfig, RuleConfig
from remediator.metrics import RemediatorMetrics
from remediator.policy.decide import Plan, breaker_key
from remediator.runtime.journal import Journal
from remediator.runtime.slots import RegistryLeases, Slots
from remediator.state.base import BreakerPolicy, StateBackend

logger = logging.getLogger("remediator.runtime")


@dataclass(frozen=True)
class Outcome:
    """What one action run came to."""

    ok: bool
    detail: str


def breaker_policy(config: CircuitBreakerConfig) -> BreakerPolicy:
    """The circuit breakers' bounds in force."""
    return BreakerPolicy(config.failures, config.open_minutes * 60)


@dataclass
class Actor:
    """Runs actions within the global concurrency and each rule's deadline."""

    slots: Slots
    registries: RegistryLeases
    state: StateBackend
    metrics: RemediatorMetrics

    async def run(
        self, rule: RuleConfig, plan: Plan, journal: Journal, breakers: CircuitBreakerConfig, action_name: str = ""
    ) -> Outcome:
        """Run the plan's action (the rule's, or a playbook step's `action_name`) under the rule's deadline; a
        deadline overrun cancels the action (whose own cleanup kills what it started) and counts as a failure.
        The outcome is journaled and fed to the breaker."""
        name = action_name or rule.action
        assert plan.params is not None
        assert plan.bound is not None
        assert plan.target is not None
        started = time.perf_counter()
        async with self.slots.take(), self.registries.lease() as registry:
            action = registry.get(name)
            journal.add("action_started", rule.name, "started", name)  # after any wait for a slot
            self.metrics.in_flight.inc()
            try:
                async with asyncio.timeout(rule.timeout_seconds):
                    async for attempt in AsyncRetrying(
                        stop=stop_after_attempt(rule.retries + 1),
                        wait=wait_exponential(multiplier=0.5, max=10),
                        retry=retry_if_exception_type(TransientActionError),
                        reraise=True,
                    ):
                        with attempt:
                            result = await action.run(plan.params, plan.bound)
                outcome = Outcome(True, result.detail)
            except TimeoutError as error:
                # A command's cleanup attaches what it printed before it was killed to the cancellation.
                cause = error.__cause__
                so_far = f"; {cause}" if isinstance(cause, asyncio.CancelledError) and cause.args else ""
                outcome = Outcome(
                    False, f"deadline of {rule.timeout_seconds:g}s passed: the action was stopped{so_far}"
                )
            except (TransientActionError, PermanentActionError) as error:
                outcome = Outcome(False, f"{type(error).__name__}: {error}")
            except Exception as error:  # noqa: BLE001 - an action is a boundary: its bug is a failure, never a lost alert
                outcome = Outcome(False, f"the action failed unexpectedly: {type(error).__name__}: {error}")
            finally:
                self.metrics.in_flight.dec()
        self.metrics.actions.labels(name, "success" if outcome.ok else "failure").inc()
        self.metrics.action_duration.labels(name).observe(time.perf_counter() - started)
        journal.add("action", rule.name, "success" if outcome.ok else "failure", outcome.detail)
        log_event(
            logger,
            logging.INFO,
            "action_done",
            incident=journal.alert.incident_key,
            rule=rule.name,
            ok=outcome.ok,
            detail=outcome.detail,
        )
        is_open = await self.state.record_outcome(breaker_key(rule, plan.target), outcome.ok, breaker_policy(breakers))
        self.metrics.circuit_open.labels(rule.name, plan.target).set(1 if is_open else 0)
        return outcome
