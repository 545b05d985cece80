"""Actions: registered by name in an explicit registry, each with a pydantic parameter model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class ActionParams(BaseModel):
    """Base of every action's parameters: unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TransientActionError(Exception):
    """A failure worth retrying (connection refused, timeout, 5xx)."""


class PermanentActionError(Exception):
    """A failure retrying cannot fix (4xx, target not found, refused by a safety check)."""


@dataclass(frozen=True)
class ActionResult:
    """What an action did, for the audit trail."""

    detail: str
    changed: bool = True


class Action(ABC):
    """One kind of first response. Implementations check before acting, so acting twice is harmless."""

    name: ClassVar[str]
    params_model: ClassVar[type[ActionParams]]
    escalates: ClassVar[bool] = False  # True: after running, the incident goes straight to a human

    @abstractmethod
    async def run(self, params: Any, bound: Mapping[str, str]) -> ActionResult:
        """Perform the action; raise TransientActionError or PermanentActionError on failure."""

    async def close(self) -> None:
        """Release clients the action keeps."""
        return


class ActionRegistry:
    """Actions by name; built explicitly at start-up, never a module-level mutable registry."""

    def __init__(self, actions: Iterable[Action]) -> None:
        self._actions = {action.name: action for action in actions}

    def get(self, name: str) -> Action:
        """Return the action registered under name (KeyError when unknown)."""
        return self._actions[name]

    def names(self) -> list[str]:
        """Return the registered action names."""
        return sorted(self._actions)

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    async def close(self) -> None:
        """Close every action's clients."""
        for action in self._actions.values():
            await action.close()


def substitute(params: Mapping[str, Any], bound: Mapping[str, str]) -> dict[str, Any]:
    """Replace string values that are exactly `{name}` by the bound (allowlisted) label value; nothing else."""
    result: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in bound:
            result[key] = bound[value[1:-1]]
        elif isinstance(value, dict):
            result[key] = substitute(value, bound)
        else:
            result[key] = value
    return result
