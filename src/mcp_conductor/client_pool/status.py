"""A downstream server's health as the pool reports it, and the backoff between its reconnect attempts."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from mcp_conductor.client_pool.catalog import ServerName


class ServerState(StrEnum):
    CONNECTING = "connecting"
    READY = "ready"
    FAILED = "failed"
    RECONNECTING = "reconnecting"
    DISABLED = "disabled"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """A read-only view of one server's health."""

    name: ServerName
    transport: str
    state: ServerState
    error: str | None = None
    since: datetime | None = None
    connected_at: datetime | None = None
    connect_ms: float | None = None
    tools: int = 0
    attempts: int = 0
    protocol_version: str | None = None
    stderr_tail: str = ""
    stdout_garbage: int = 0  # lines on stdout that were not MCP messages (for ``doctor``'s diagnosis)

    def public(self) -> dict[str, Any]:
        return {"server": self.name, "state": self.state.value, "error": self.error}


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter (the sleep is uniform in [0, min(cap, base * 2**n)])."""

    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        ceiling: float = min(self.cap_s, self.base_s * 2.0 ** max(0, attempt - 1))
        return rand() * ceiling


def now() -> datetime:
    return datetime.now(UTC)
