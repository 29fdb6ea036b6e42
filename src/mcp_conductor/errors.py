"""The errors mcp-conductor raises, one class per failure kind.

    ConductorError                     base; every error can describe itself as {kind, message, retryable, ...}
    ├── ConfigError                    the config file is unreadable, malformed or inconsistent
    ├── UnknownServerError             a server name that is not in the config
    ├── UnknownToolError               a tool id that is not in the catalog (carries did-you-mean suggestions)
    │   └── ToolHiddenError            the server offers it, but its tools.allow / tools.deny in the config hide it
    ├── AmbiguousToolError             a bare tool name that more than one server offers
    └── DownstreamError                a call to a downstream server failed
        ├── ServerUnavailableError     the server is not connected (starting, failed, reconnecting, disabled)
        ├── ConnectionLostError        the connection dropped while the call was in flight
        ├── CallTimeoutError           the call did not finish within its timeout (it was cancelled)
        ├── ToolExecutionError         the tool answered with an error result (isError)
        ├── InputRequiredError         the tool asked for input from a person (elicitation), nobody to ask
        └── ProtocolError              the server answered with a JSON-RPC error or garbage

Subclasses that belong to one module live there: ``server.store.connections.StoreError`` (store_error),
``server.references.ReferenceSyntaxError`` (bad_reference) and ``ReferenceResolutionError`` (bad_reference_path),
``execution.plan_checks.PlanNotFoundError`` (unknown_plan), ``execution.chains.RunNotFoundError`` (unknown_run),
``RunBusyError`` (run_busy), ``execution.library.ChainNotFoundError`` (unknown_chain),
``planning.saved_chains.ChainRefError`` (invalid_chain_name).

SDK exceptions are translated where they enter (`client_pool.connection`), chained with ``raise ... from``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class ConductorError(Exception):
    """Base class of every error mcp-conductor raises on purpose."""

    kind: ClassVar[str] = "error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def summary(self) -> str:
        """One line: the message, and the hint in parentheses."""
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def describe(self) -> dict[str, Any]:
        """The structured form an LLM or a script sees: never a traceback."""
        out: dict[str, Any] = {"kind": self.kind, "message": self.message, "retryable": self.retryable}
        if self.hint:
            out["hint"] = self.hint
        return out


class ConfigError(ConductorError):
    """The configuration is unreadable, malformed or inconsistent."""

    kind = "config_error"


class UnknownServerError(ConductorError):
    """A server name that the config does not define."""

    kind = "unknown_server"

    def __init__(self, server: str, known: Sequence[str], *, tool: str | None = None) -> None:
        names = ", ".join(sorted(known)) or "(none configured)"
        super().__init__(f"unknown server {server!r}; configured servers: {names}")
        self.server = server
        self.tool = tool
        self.known = sorted(known)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"server": self.server, "tool": self.tool, "known": self.known}


class UnknownToolError(ConductorError):
    """A tool id that is not in the catalog."""

    kind = "unknown_tool"

    def __init__(self, tool: str, suggestions: Sequence[str] = ()) -> None:
        hint = f"did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else None
        super().__init__(f"unknown tool {tool!r}", hint=hint or "use discover_tools to find tool ids")
        self.tool = tool
        self.suggestions = list(suggestions)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"tool": self.tool, "suggestions": self.suggestions}


class ToolHiddenError(UnknownToolError):
    """A tool the server offers but the config hides (``conductor.servers.NAME.tools.allow`` / ``deny``)."""

    kind = "tool_hidden"

    def __init__(self, tool: str, reason: str) -> None:
        # Not UnknownToolError's "unknown tool" message: the tool exists, and near-miss suggestions would mislead.
        ConductorError.__init__(
            self,
            f"{tool} is hidden by the config: {reason}",
            hint="change that list in the config to use it, or pick another tool (discover_tools lists the shown ones)",
        )
        self.tool = tool
        self.reason = reason
        self.suggestions: list[str] = []

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"reason": self.reason}


class AmbiguousToolError(ConductorError):
    """A bare tool name offered by more than one server."""

    kind = "ambiguous_tool"

    def __init__(self, tool: str, candidates: Sequence[str]) -> None:
        super().__init__(
            f"tool name {tool!r} is offered by several servers",
            hint=f"use a full id: {', '.join(sorted(candidates))}",
        )
        self.tool = tool
        self.suggestions = sorted(candidates)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"tool": self.tool, "suggestions": self.suggestions}


class DownstreamError(ConductorError):
    """A call to a downstream server failed."""

    kind = "downstream_error"

    def __init__(self, message: str, *, server: str, tool: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.server = server
        self.tool = tool

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"server": self.server, "tool": self.tool}


class ServerUnavailableError(DownstreamError):
    """The server is not connected right now."""

    kind = "unavailable"
    retryable = True


class ConnectionLostError(DownstreamError):
    """The connection dropped while the call was in flight; the pool reconnects."""

    kind = "connection_lost"
    retryable = True


class CallTimeoutError(DownstreamError):
    """The call did not finish in time and was cancelled."""

    kind = "timeout"
    retryable = True


class ToolExecutionError(DownstreamError):
    """The tool ran and reported an error (an ``isError`` result)."""

    kind = "tool_error"


class InputRequiredError(DownstreamError):
    """The tool asked for input from a person (an elicitation), which no step of a chain can give."""

    kind = "input_required"


class ProtocolError(DownstreamError):
    """The server answered with a JSON-RPC error or something that is not MCP."""

    kind = "protocol_error"
