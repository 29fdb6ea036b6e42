"""Demo MCP server "latency": delays, deterministic faults and call counters, for tests and benchmarks.

Every call is counted when it starts (``counters`` itself is not counted). ``LATENCY_DEFAULT_MS`` adds a fixed
delay to every call. ``LATENCY_COUNTER_FILE`` keeps all counters (per tool, per flaky key, per written key)
in a JSON file, so they survive a restart and are shared by processes using the same file. Run over stdio with
``python -m mcp_conductor.demo.latency``.
"""

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from mcp_conductor.demo._persist import read_json, update_json

_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, idempotent_hint=False, destructive_hint=False, open_world_hint=False)

Ms = Annotated[float, Field(ge=0, le=600_000, description="Extra delay in milliseconds before answering.")]
Key = Annotated[str, Field(min_length=1, description="Calls with the same key share one counter.")]
_CALL = Field(description="How many times this tool has been called, this call included.")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Slept(_Out):
    slept_ms: float = Field(description="The requested delay (the server's default delay not included).")
    call: int = _CALL


class Echoed(_Out):
    value: Any = Field(description="The value that was sent, unchanged.")
    call: int = _CALL


class FlakyOk(_Out):
    ok: bool = Field(description="Always true: failing calls return an error instead.")
    call: int = Field(description="How many times flaky has been called with this key, this call included.")


class CallCount(_Out):  # fail's declared result, never returned: a NoReturn annotation crashes the SDK
    call: int = _CALL


class Counts(_Out):
    counts: dict[str, int] = Field(description="Tool name -> number of calls so far (uncalled: absent).")


class Written(_Out):
    key: str = Field(description="The key written.")
    writes: int = Field(description="How many slow_write calls completed for this key, this one included.")
    call: int = _CALL


def flaky_fails(call: int, fail_rate: float, fail_first: int = 0) -> bool:
    """Whether the ``call``-th call (1-based) of a flaky key fails.

    With ``fail_first`` > 0, exactly the first ``fail_first`` calls fail. Otherwise, of the first n calls
    exactly ceil(n x fail_rate) fail, as early as possible: 0.5 fails calls 1, 3, 5...; 0.25 fails 1, 5, 9...
    """
    if fail_first > 0:
        return call <= fail_first
    rate = Fraction(str(fail_rate))  # the decimal as written: 0.7 * 10 is exactly 7, not 7.000000000000001
    return math.ceil(call * rate) > math.ceil((call - 1) * rate)


class _Counters:
    """Counters in sections ("calls", "flaky", "writes"), kept in memory or in a shared JSON file."""

    def __init__(self, file: Path | None) -> None:
        self._file = file
        self._memory: dict[str, Any] = {}

    def bump(self, section: str, name: str) -> int:
        def change(data: dict[str, Any]) -> int:
            counts = data.setdefault(section, {})
            counts[name] = counts.get(name, 0) + 1
            return int(counts[name])

        return update_json(self._file, change) if self._file else change(self._memory)

    def section(self, section: str) -> dict[str, int]:
        data = read_json(self._file) if self._file else self._memory
        return dict(data.get(section, {}))


def build_server(default_ms: float = 0.0, counter_file: Path | None = None) -> MCPServer:
    """A latency server whose every call waits ``default_ms`` first; counters in ``counter_file`` if given.

    Raises:
        ValueError: ``default_ms`` is negative or not finite.
    """
    if not math.isfinite(default_ms) or default_ms < 0:
        raise ValueError(f"the default delay must be a non-negative number of ms, not {default_ms}")
    server = MCPServer(
        "latency",
        version="0.1.0",
        instructions="Test helper: adds delays, fails on purpose, and counts calls.",
        log_level="WARNING",
    )
    state = _Counters(counter_file)

    async def start(tool: str, ms: float = 0.0) -> int:
        call = state.bump("calls", tool)
        await anyio.sleep((default_ms + ms) / 1000)
        return call

    @server.tool(annotations=_READ)
    async def sleep(ms: Annotated[float, Field(ge=0, le=600_000, description="Delay in ms.")]) -> Slept:
        """Wait for the given number of milliseconds, then answer. Use it to simulate a slow tool."""
        return Slept(slept_ms=ms, call=await start("sleep", ms))

    @server.tool(annotations=_READ)
    async def echo(value: Annotated[Any, Field(description="Any JSON value, returned as is.")]) -> Echoed:
        """Return the given value unchanged. Use it to check that arguments arrive intact."""
        return Echoed(value=value, call=await start("echo"))

    @server.tool(annotations=_READ)
    async def flaky(
        fail_rate: Annotated[float, Field(ge=0, le=1, description="Fraction of calls that fail.")] = 0.5,
        fail_first: Annotated[int, Field(ge=0, description="If > 0: fail the first N calls only.")] = 0,
        ms: Ms = 0,
        key: Key = "default",
    ) -> FlakyOk:
        """Fail or succeed deterministically, to test retries. Failures come back as tool errors.

        Each key counts its calls (use a fresh key for a fresh sequence). With fail_first > 0 the first
        fail_first calls fail and all later ones succeed (fail_rate is ignored). Otherwise, of the first n
        calls exactly ceil(n * fail_rate) fail, as early as possible: fail_rate 0.5 fails calls 1, 3, 5, ...
        and succeeds on 2, 4, 6, ...
        """
        call = state.bump("flaky", key)  # before the delay: a call cancelled while waiting still counts
        await start("flaky", ms)
        if flaky_fails(call, fail_rate, fail_first):
            raise ToolError(f"flaky failure: call {call} for key {key!r} fails by rule")
        return FlakyOk(ok=True, call=call)

    @server.tool(annotations=_READ)
    async def fail(
        message: Annotated[str, Field(description="The error message to fail with.")],
    ) -> CallCount:
        """Always fail with the given message (as a tool error). Use it to test error handling."""
        await start("fail")
        raise ToolError(message)

    @server.tool(annotations=_READ)
    async def counters() -> Counts:
        """How many times each tool of this server has been called (counters itself is not counted).

        Counts survive restarts when the server runs with LATENCY_COUNTER_FILE set.
        """
        await anyio.sleep(default_ms / 1000)
        return Counts(counts=state.section("calls"))

    @server.tool(annotations=_WRITE)
    async def slow_write(
        key: Key,
        ms: Ms = 0,
    ) -> Written:
        """Wait, then record one write to a key. Not idempotent: every call adds a write, so never retry it.

        The write happens after the delay, so a call cancelled while waiting writes nothing.
        """
        call = await start("slow_write", ms)
        return Written(key=key, writes=state.bump("writes", key), call=call)

    return server


def _from_env() -> MCPServer:
    raw_ms = os.environ.get("LATENCY_DEFAULT_MS", "0") or "0"
    try:
        default_ms = float(raw_ms)
    except ValueError:
        raise ValueError(f"LATENCY_DEFAULT_MS must be a number of milliseconds, not {raw_ms!r}") from None
    counter_file = os.environ.get("LATENCY_COUNTER_FILE")
    return build_server(default_ms, Path(counter_file) if counter_file else None)


server = _from_env()

if __name__ == "__main__":
    server.run()
