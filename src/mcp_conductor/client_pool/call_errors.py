"""What a downstream server's failures become: the conductor's typed errors, in one line each.

``connection`` owns the calls; this module only translates what went wrong (an MCP error code, a tool's error
result, an exception from the transport) and answers a tool's request for user input, which nobody can answer
inside a chain. ``call_failure`` maps any failure of a call inside the client to one typed error.
"""

from __future__ import annotations

from typing import Any

import anyio
from mcp import MCPError
from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult, ErrorData, TextContent
from pydantic import ValidationError

from mcp_conductor.client_pool.catalog import ServerName
from mcp_conductor.client_pool.secrets import redact
from mcp_conductor.errors import CallTimeoutError, ConnectionLostError, InputRequiredError, ProtocolError

# The code of the refusal ``no_person_to_ask`` answers a tool's request for input with (a server error code of
# our own: it reaches the downstream server only in the legacy era, where the tool sees it as a failed request).
INPUT_REQUIRED = -32050


async def no_person_to_ask(context: Any, params: Any) -> ErrorData:
    """A downstream tool asked for user input (elicitation): nobody can answer inside a chain, so the call ends
    and its step fails with kind ``input_required`` and the tool's own question."""
    question = str(getattr(params, "message", "") or "").strip() or "(no message)"
    return ErrorData(code=INPUT_REQUIRED, message=question[:1000])


def translate(exc: MCPError, server: ServerName, tool: str, secrets: frozenset[str]) -> Exception:
    message = redact(exc.message, secrets)
    if exc.code == INPUT_REQUIRED:
        return InputRequiredError(
            f"{server}/{tool} asked for input from a person: {message}",
            server=server,
            tool=tool,
            hint="give the tool what it asks for in its arguments, or call it directly so the host can ask",
        )
    if exc.code == CONNECTION_CLOSED:
        return ConnectionLostError(f"{server} closed the connection during the call", server=server, tool=tool)
    if exc.code == REQUEST_TIMEOUT:
        return CallTimeoutError(f"{server}/{tool} timed out: {message}", server=server, tool=tool)
    return ProtocolError(f"{server} answered with error {exc.code}: {message}", server=server, tool=tool)


def closed_connection(exc: Exception) -> bool:
    """Whether a call's failure means the connection is gone (the owner task should reconnect now)."""
    if isinstance(exc, MCPError):
        return exc.code == CONNECTION_CLOSED
    return isinstance(exc, (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream))


def call_failure(exc: Exception, server: ServerName, tool: str, timeout_s: float, secrets: frozenset[str]) -> Exception:
    """What a call of ``server/tool`` that raised ``exc`` (inside the client) becomes."""
    if isinstance(exc, TimeoutError):
        return CallTimeoutError(
            f"{server}/{tool} did not answer within {timeout_s:g}s",
            server=server,
            tool=tool,
            hint="raise the step's timeout_s or the server's timeout_s in the config",
        )
    if isinstance(exc, MCPError):
        return translate(exc, server, tool, secrets)
    if isinstance(exc, ValidationError):  # the answer to this call is not a CallToolResult
        return ProtocolError(
            f"{server}/{tool} answered with a malformed result: {redact(describe(exc), secrets)}",
            server=server,
            tool=tool,
        )
    if closed_connection(exc):
        return ConnectionLostError(f"{server} closed the connection", server=server, tool=tool)
    # e.g. the SDK's RuntimeError for a result that breaks the tool's outputSchema
    return ProtocolError(
        f"{server}/{tool} failed in the MCP client: {redact(describe(exc), secrets)}", server=server, tool=tool
    )


def error_text(result: CallToolResult) -> str:
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    return " ".join(texts).strip()[:4000] or "the tool reported an error without a message"


def describe(exc: BaseException) -> str:
    """One line for an exception, unwrapping exception groups to their first leaf."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename or exc}"
    # First line only: a pydantic error goes on for lines, which must not reach the LLM or the status.
    text = str(exc).strip().split("\n", 1)[0] or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
