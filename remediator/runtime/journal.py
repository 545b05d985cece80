"""One alert's audit entries, gathered as it is processed and written together."""

from __future__ import annotations

from dataclasses import dataclass, field

from remediator.intake.payload import WebhookAlert
from remediator.state.base import AuditEntry
from remediator.state.incident import now


@dataclass
class Journal:
    """One alert's audit entries, written together: before its action runs, and when its processing ends."""

    alert: WebhookAlert
    entries: list[AuditEntry] = field(default_factory=list)

    def add(self, event: str, rule: str | None = None, decision: str | None = None, detail: str = "") -> None:
        """Note one step (written at the next flush)."""
        self.entries.append(AuditEntry(now(), self.alert, event, rule, decision, detail))

    def take(self) -> list[AuditEntry]:
        """Return the entries not yet written, and forget them."""
        taken, self.entries = self.entries, []
        return taken
