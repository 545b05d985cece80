"""The runtime: workers that take alerts most urgent first, the incidents' own timers, and reloads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from common.http import SharedSession
from common.logs import log_event
from common.service import cancel_and_wait
from remediator.actions.base import ActionRegistry
from remediator.config import RemediatorConfig, RuleConfig
from remediator.escalation.outbox import Outbox
from remediator.intake.payload import WebhookAlert
from remediator.metrics import RemediatorMetrics
from remediator.playbook.evidence import EvidenceBackends
from remediator.playbook.prometheus import fill_promql
from remediator.policy.decide import ESCALATION_REASONS, Plan, Reason, denied, matching_rules, no_rule, precheck
from remediator.runtime.acting import Actor
from remediator.runtime.incidents import IncidentRunner, ResolveDeferredError, incident_key
from remediator.runtime.journal import Journal
from remediator.runtime.playbook import (
    Conditions,
    Playbooks,
)
from remediator.runtime.slots import RegistryLeases, Slots
from remediator.runtime.timers import Timers
from remediator.runtime.work_queue import WorkQueue
from remediator.state.base import AuditEntry, AuditStore, Delivery, LockLostError, StateBackend, StateUnavailableError
from remediator.state.incident import now

logger = logging.getLogger("remediator.runtime")
Sources = Callable[[RemediatorConfig, SharedSession], tuple[Conditions | None, EvidenceBackends]]
RESOLVE_RETRY_SECONDS = 1.0
WORKERS_PER_SLOT = 2  # a worker deciding while the others wait on their actions' slots


class Engine:
    """Processes accepted alerts with bounded workers, most urgent first, and runs the incidents' timers."""

    def __init__(
        self,
        config: RemediatorConfig,
        registry: ActionRegistry,
        store: AuditStore,
        state: StateBackend,
        outbox: Outbox,
        metrics: RemediatorMetrics,
        http: SharedSession | None = None,
        sources: Sources | None = None,
    ) -> None:
        self.config = config
        self.http = http if http is not None else SharedSession("tradeops-remediator")
        self.registries = RegistryLeases(registry)
        self.store = store
        self.state = state
        self.outbox = outbox
        self.metrics = metrics
        self.queue = WorkQueue()
        self.slots = Slots(config.limits.concurrency)
        actor = Actor(self.slots, self.registries, state, metrics)
        # The playbooks' Prometheus and evidence backends, built from each configuration in force.
        self.sources = sources
        self.conditions: Conditions | None = None
        self.evidence = EvidenceBackends(self.http)
        if sources is not None:
            self.conditions, self.evidence = sources(config, self.http)
        self.playbooks = Playbooks(
            lambda: self.config,
            lambda: self.registries.current,
            state,
            actor,
            lambda: self.conditions,
            fill_promql,
            lambda: self.evidence,
        )
        self.runner = IncidentRunner(
            lambda: self.config, lambda: self.registries.current, store, state, outbox, actor, self.playbooks, metrics
        )
        self._workers: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._later: set[asyncio.TimerHandle] = set()
        self.timers = Timers(self)

    @property
    def registry(self) -> ActionRegistry:
        """The actions in force."""
        return self.registries.current

    def lock_seconds(self, rule: RuleConfig | None) -> float:
        """How long an incident's lock outlives a replica that died holding it (it is renewed while held)."""
        margin = self.config.state_redis.lock_margin_seconds if self.config.state_redis is not None else 60.0
        return (rule.timeout_seconds if rule is not None else 0) + margin

    async def explain(self, alert: WebhookAlert) -> list[Plan]:
        """Decide for an alert without side effects (for --explain and the console)."""
        if alert.status == "resolved":
            return [Plan(None, Reason.RESOLVED, "resolved alerts never act; the incident is closed")]
        rules = matching_rules(self.config, alert.labels)
        if not rules:
            return [no_rule()]
        plans = []
        for rule in rules:
            plan = precheck(self.config, self.registry, alert, rule, None, now())
            if plan.reason is Reason.EXECUTED and plan.target is not None:
                denial = await self.state.admit(self.runner.admission(rule, plan.target, alert), consume=False)
                if denial is not None:
                    plan = denied(rule, plan.target, denial)
            plans.append(plan)
        return plans

    def prepare_metrics(self) -> None:
        """Create the series of every configured rule, action, reason and channel at 0 (also after a reload)."""
        self.metrics.prepare(
            [(rule.name, rule.action) for rule in self.config.rules],
            [str(reason) for reason in Reason if reason is not Reason.NO_RULE],
            ESCALATION_REASONS,
            self.outbox.channel_names(),
        )
        self.metrics.decisions.labels("", Reason.NO_RULE)

    async def start(self) -> None:
        """Resume unfinished alerts of the inbox, then start the workers and the timers (the store, the state and
        the outbox are opened before, each by its own cleanup context)."""
        self.prepare_metrics()
        for delivery, alert in await self.store.pending():
            self.queue.put(delivery, alert)
        self._resize_workers()
        self._background.append(asyncio.create_task(self.timers.loop()))

    async def reconfigure(self, config: RemediatorConfig, registry: ActionRegistry) -> None:
        """Apply a reloaded configuration: rules, every bound (concurrency included) and channels change; all
        state is kept, and actions in flight finish with the action objects they started with."""
        self.config = config
        if self.sources is not None:
            self.conditions, self.evidence = self.sources(config, self.http)
        self.outbox.reconfigure(config.escalation)
        await self.slots.resize(config.limits.concurrency)
        self._resize_workers()
        self.prepare_metrics()
        await self.registries.replace(registry)

    def _resize_workers(self) -> None:
        wanted = self.config.limits.concurrency * WORKERS_PER_SLOT
        while len(self._workers) < wanted:
            task = asyncio.create_task(self._worker())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def stop(self) -> None:
        """Stop workers and timers (unfinished inbox entries stay pending for the next start)."""
        for handle in self._later:
            handle.cancel()
        self._later.clear()
        await cancel_and_wait([*self._workers, *self._background])
        self._workers.clear()
        self._background.clear()

    def has_room(self, count: int) -> bool:
        """Whether `count` more alerts fit in the work queue."""
        return self.queue.qsize() + count <= self.config.limits.queue_size

    def enqueue(self, delivery: Delivery, alert: WebhookAlert) -> None:
        """Queue one accepted (recorded) alert."""
        self.queue.put(delivery, alert)

    async def _worker(self) -> None:
        task = asyncio.current_task()
        while True:
            if task is not None and task.cancelling():
                # A client library swallowed the stop's cancellation mid-alert (seen with the Redis and
                # PostgreSQL backends under load): honour it here, or the shutdown waits on this worker for ever.
                raise asyncio.CancelledError
            if len(self._workers) > self.config.limits.concurrency * WORKERS_PER_SLOT:
                return  # a reload lowered the concurrency: this worker retires between alerts
            delivery, alert = await self.queue.get()
            try:
                self.metrics.queue_depth.set(self.queue.qsize())
                await self._process_delivery(delivery, alert)
            except Exception as error:  # noqa: BLE001 - a worker must survive one bad alert; it stays pending
                log_event(logger, logging.ERROR, "process_failed", incident=alert.incident_key, error=repr(error))
            finally:
                self.queue.task_done()

    async def _process_delivery(self, delivery: Delivery, alert: WebhookAlert) -> None:
        journal = Journal(alert, [AuditEntry(delivery.received_at, alert, "received")])
        try:
            await self.process(alert, journal)
        except ResolveDeferredError:
            await self.runner.flush(journal)
            handle = asyncio.get_running_loop().call_later(RESOLVE_RETRY_SECONDS, self._requeue, delivery, alert)
            self._later.add(handle)
            return
        await self.runner.flush(journal, done=delivery)

    def _requeue(self, delivery: Delivery, alert: WebhookAlert) -> None:
        self._later = {handle for handle in self._later if not handle.cancelled() and handle.when() > time.monotonic()}
        self.queue.put(delivery, alert)

    async def process(self, alert: WebhookAlert, journal: Journal) -> list[Plan]:
        """Decide and act for one alert under each rule it matches (or escalate it under none), journaling every
        step (written before any action runs)."""
        rules: list[RuleConfig | None] = [*matching_rules(self.config, alert.labels)] or [None]
        plans = []
        for rule in rules:
            try:
                plans.append(await self._under_lock(alert, rule, journal))
            except StateUnavailableError as error:
                plans.append(await self.runner.fail_closed(alert, rule, str(error), journal))
            except LockLostError as error:
                plan = Plan(rule, Reason.DEDUPLICATED, f"lock lost, nothing more done here: {error}")
                self.runner.record(journal, plan)
                plans.append(plan)
        return plans

    async def _under_lock(self, alert: WebhookAlert, rule: RuleConfig | None, journal: Journal) -> Plan:
        key = incident_key(alert, rule)
        if alert.status == "resolved":
            # Before the lock is waited for: a retry or a firing copy queued for the same lock ahead of this
            # resolve must find the incident resolving and act no more.
            await self.state.mark_resolving(key)
        async with self.state.hold(key, self.lock_seconds(rule)) as held:
            if not held.won:
                if alert.status == "resolved":
                    raise ResolveDeferredError(alert.incident_key)
                plan = Plan(rule, Reason.DEDUPLICATED, "another replica holds this incident")
                self.runner.record(journal, plan)
                return plan
            if alert.status == "resolved":
                await self.runner.resolve(held, alert, rule, journal)
                return Plan(rule, Reason.RESOLVED, "alert resolved: incident closed")
            return await self.runner.fire(held, alert, rule, journal)

    async def run_due_timers(self) -> int:
        """Run the incidents' timers that are due (remediator.runtime.timers); return how many ran."""
        return await self.timers.run_due()

    async def decide_approval(self, public_id: str, approve: bool, user: str) -> str:
        """Approve or deny a step waiting for a human (remediator.runtime.timers.Timers.decide_approval)."""
        return await self.timers.decide_approval(public_id, approve, user)
