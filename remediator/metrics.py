"""The remediator's own metrics (tradeops_remediator_*), in a registry owned by the process."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from common.version import build_info


@dataclass
class RemediatorMetrics:
    """Counters and gauges of one remediator; never the global default registry."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        self._add_decision_metrics(self.registry)
        self._add_escalation_metrics(self.registry)
        self._add_runtime_metrics(self.registry)
        info = build_info()
        Gauge(
            "tradeops_remediator_build_info",
            "1, labelled with the remediator's version, revision and Python.",
            list(info.labels()),
            registry=self.registry,
        ).labels(**info.labels()).set(1)
        # Bound once, as every accepted payload counts into both: labels() takes a lock and checks its values.
        self.received_firing = self.alerts_received.labels("firing")
        self.received_resolved = self.alerts_received.labels("resolved")

    def _add_decision_metrics(self, r: CollectorRegistry) -> None:
        """What arrives and what is decided and run."""
        self.alerts_received = Counter(
            "tradeops_remediator_alerts_received", "Alerts received by the webhook, by status.", ["status"], registry=r
        )
        self.truncated_alerts = Counter(
            "tradeops_remediator_truncated_alerts",
            "Alerts Alertmanager left out of payloads (truncatedAlerts).",
            registry=r,
        )
        self.decisions = Counter(
            "tradeops_remediator_decisions",
            "Decisions taken per alert and rule, by reason.",
            ["rule", "reason"],
            registry=r,
        )
        self.actions = Counter(
            "tradeops_remediator_actions",
            "Actions run, by outcome (success, failure).",
            ["action", "outcome"],
            registry=r,
        )
        self.action_duration = Histogram(
            "tradeops_remediator_action_duration_seconds",
            "How long actions took, retries included.",
            ["action"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )

    def _add_escalation_metrics(self, r: CollectorRegistry) -> None:
        """What the escalation outbox sends and holds."""
        self.escalations = Counter(
            "tradeops_remediator_escalations", "Escalations sent, by reason.", ["reason"], registry=r
        )
        self.escalation_failures = Counter(
            "tradeops_remediator_escalation_failures",
            "Delivery attempts a channel did not accept (the dashboards' series; see escalation_deliveries).",
            ["channel"],
            registry=r,
        )
        self.escalations_pending = Gauge(
            "tradeops_remediator_escalations_pending",
            "Escalation outbox records not yet delivered, by channel.",
            ["channel"],
            registry=r,
        )
        self.escalation_deliveries = Counter(
            "tradeops_remediator_escalation_deliveries",
            "Escalation delivery attempts (one per POST), by channel and outcome (delivered, failed).",
            ["channel", "outcome"],
            registry=r,
        )
        self.escalation_oldest_pending_age = Gauge(
            "tradeops_remediator_escalation_oldest_pending_age_seconds",
            "Age of the oldest escalation outbox record not yet delivered, by channel; 0 when none.",
            ["channel"],
            registry=r,
        )

    def _add_runtime_metrics(self, r: CollectorRegistry) -> None:
        """The work in progress, the limits and the webhook's answers."""
        self.in_flight = Gauge("tradeops_remediator_in_flight_actions", "Actions running now.", registry=r)
        self.queue_depth = Gauge("tradeops_remediator_queue_depth", "Alerts waiting to be processed.", registry=r)
        self.budget_remaining = Gauge(
            "tradeops_remediator_budget_remaining", "Actions left in the trailing hour's global budget.", registry=r
        )
        self.circuit_open = Gauge(
            "tradeops_remediator_circuit_open",
            "1 while a rule's circuit breaker on a target is open.",
            ["rule", "target"],
            registry=r,
        )
        self.webhook_requests = Counter(
            "tradeops_remediator_webhook_requests", "Webhook requests answered, by HTTP status.", ["code"], registry=r
        )
        self.audit_write_retries = Counter(
            "tradeops_remediator_audit_write_retries",
            "Writes of acknowledged alerts' outcomes (journal, done marker, page) the audit store refused, each tried"
            " again until taken.",
            registry=r,
        )
        self.read_copy_failures = Counter(
            "tradeops_remediator_read_copy_failures",
            "Incidents saved in Redis whose read copy in the audit store failed (copied again once it is back).",
            registry=r,
        )

    def prepare(
        self,
        rules: Iterable[tuple[str, str]],
        decisions: Iterable[str],
        escalations: Iterable[str],
        channels: Iterable[str],
    ) -> None:
        """Create the known label values at 0, so rate() sees the first increment and dashboards have series."""
        reasons = list(decisions)
        for rule, action in rules:
            for reason in reasons:
                self.decisions.labels(rule, reason)
            for outcome in ("success", "failure"):
                self.actions.labels(action, outcome)
            self.action_duration.labels(action)
        for reason in escalations:
            self.escalations.labels(reason)
        for channel in channels:
            self.escalation_failures.labels(channel)
            self.escalations_pending.labels(channel)
            self.escalation_oldest_pending_age.labels(channel)
            for outcome in ("delivered", "failed"):
                self.escalation_deliveries.labels(channel, outcome)
        for status in ("firing", "resolved"):
            self.alerts_received.labels(status)
