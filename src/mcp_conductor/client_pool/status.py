"""A downstream server's health as the pool reports it."""

from __future__ import annotations

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


def now() -> datetime:
    return datetime.now(UTC)
