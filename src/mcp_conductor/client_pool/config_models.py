"""The typed config: what ``config.load_config`` builds from a Claude Desktop ``mcpServers`` file (servers,
per-server settings, the conductor's defaults). Frozen pydantic models; secrets stay out of ``repr``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mcp_conductor.client_pool.catalog import ServerName
from mcp_conductor.client_pool.consent_policy import ConsentPolicy

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_CONNECT_TIMEOUT_S = 30.0
DEFAULT_SERVER_CONCURRENCY = 16
DEFAULT_GLOBAL_CONCURRENCY = 32
DEFAULT_KEEP_RUNS = 1000
DEFAULT_OUTPUT_BUDGET_BYTES = 20_000

# Keys other hosts write into server entries; accepted and ignored so their files load as they are.
_FOREIGN_SERVER_KEYS = frozenset({"autoApprove", "alwaysAllow", "description", "transportType", "timeout", "icon"})
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SERVER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolFilter(_Strict):
    """Which of a server's tools the catalog shows: ``allow`` (if given) then ``deny``, by bare tool name."""

    allow: list[str] | None = None
    deny: list[str] = Field(default_factory=list)

    def admits(self, name: str) -> bool:
        return (self.allow is None or name in self.allow) and name not in self.deny

    def hidden_because(self, server: str, name: str) -> str | None:
        """Why ``server``'s tool ``name`` is hidden, naming the config list that hides it (None when it is shown)."""
        where = f"conductor.servers.{server}.tools"
        if name in self.deny:
            return f'{where}.deny lists "{name}"'
        if self.allow is not None and name not in self.allow:
            return f'{where}.allow does not list "{name}"'
        return None


class ServerSettings(_Strict):
    """Conductor-only knobs for one server (all optional; unset means the defaults)."""

    timeout_s: Annotated[float, Field(gt=0)] | None = None
    connect_timeout_s: Annotated[float, Field(gt=0)] | None = None
    max_concurrency: Annotated[int, Field(ge=1)] | None = None
    disabled: bool = False
    tools: ToolFilter = Field(default_factory=ToolFilter)


class Defaults(_Strict):
    timeout_s: Annotated[float, Field(gt=0)] = DEFAULT_TIMEOUT_S
    connect_timeout_s: Annotated[float, Field(gt=0)] = DEFAULT_CONNECT_TIMEOUT_S
    max_concurrency: Annotated[int, Field(ge=1)] = DEFAULT_SERVER_CONCURRENCY


class EngineSettings(_Strict):
    """Which engine runs plans (``conductor.engine``): ``local`` (in process, the default) or ``temporal`` (a
    Temporal cluster at ``address``; workers started with ``mcp-conductor worker`` make the calls)."""

    kind: Literal["local", "temporal"] = "local"
    address: str | None = Field(None, description="HOST:PORT of the Temporal frontend")
    namespace: str = "default"
    task_queue: str = "mcp-conductor"

    @model_validator(mode="after")
    def _address_for_temporal(self) -> EngineSettings:
        if self.kind == "temporal" and not self.address:
            raise ValueError('engine kind "temporal" needs "address" (HOST:PORT of the Temporal frontend)')
        return self


class ConductorSection(_Strict):
    defaults: Defaults = Field(default_factory=Defaults)
    servers: dict[str, ServerSettings] = Field(default_factory=dict)
    max_concurrency: Annotated[int, Field(ge=1)] = DEFAULT_GLOBAL_CONCURRENCY
    keep_runs: Annotated[int, Field(ge=1)] = DEFAULT_KEEP_RUNS
    output_budget_bytes: Annotated[int, Field(ge=256)] = DEFAULT_OUTPUT_BUDGET_BYTES
    consent: ConsentPolicy = Field(default_factory=ConsentPolicy)
    engine: EngineSettings = Field(default_factory=EngineSettings)


class _StdioEntry(_Strict):
    type: Literal["stdio"] | None = None
    command: str
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    disabled: bool = False


class _RemoteEntry(_Strict):
    type: Literal["http", "streamable-http", "streamableHttp", "sse"] | None = None
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    disabled: bool = False


class StdioServer(_Strict):
    """A server started as a child process speaking MCP over stdin/stdout."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = Field(default_factory=dict, repr=False)
    cwd: str | None = None
    settings: ServerSettings = Field(default_factory=ServerSettings)

    @property
    def transport(self) -> str:
        return "stdio"

    def public(self) -> dict[str, Any]:
        """A description safe to log or print: env values are redacted."""
        return {
            "transport": "stdio",
            "command": self.command,
            "args": list(self.args),
            "env": dict.fromkeys(self.env, "***"),
        }


class RemoteServer(_Strict):
    """A server reached over streamable HTTP or the legacy SSE transport."""

    name: str
    url: str = Field(repr=False)
    transport: Literal["streamable-http", "sse"] = "streamable-http"
    headers: Mapping[str, str] = Field(default_factory=dict, repr=False)
    settings: ServerSettings = Field(default_factory=ServerSettings)

    def public(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "url": _redact_url(self.url),
            "headers": dict.fromkeys(self.headers, "***"),
        }


class InProcessServer(BaseModel):
    """A server object in this process (an ``MCPServer``), for tests and embedding; not loadable from JSON."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    server: Any = Field(repr=False)
    settings: ServerSettings = Field(default_factory=ServerSettings)

    @property
    def transport(self) -> str:
        return "in-process"

    def public(self) -> dict[str, Any]:
        return {"transport": "in-process"}


ServerConfig = StdioServer | RemoteServer | InProcessServer


class ConductorConfig(_Strict):
    """The whole configuration: servers by name, plus the conductor defaults."""

    servers: dict[ServerName, ServerConfig]
    defaults: Defaults = Field(default_factory=Defaults)
    max_global_concurrency: int = DEFAULT_GLOBAL_CONCURRENCY
    keep_runs: int = DEFAULT_KEEP_RUNS
    output_budget_bytes: int = DEFAULT_OUTPUT_BUDGET_BYTES
    consent: ConsentPolicy = Field(default_factory=ConsentPolicy)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    source: str | None = None
    skipped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def timeout_s(self, server: str) -> float:
        return self.servers[ServerName(server)].settings.timeout_s or self.defaults.timeout_s

    def connect_timeout_s(self, server: str) -> float:
        return self.servers[ServerName(server)].settings.connect_timeout_s or self.defaults.connect_timeout_s

    def max_concurrency(self, server: str) -> int:
        return self.servers[ServerName(server)].settings.max_concurrency or self.defaults.max_concurrency


def _redact_url(url: str) -> str:
    """Drop userinfo and the query string, which may carry credentials."""
    url = re.sub(r"//[^/@]*@", "//***@", url)
    return url.split("?", 1)[0] + ("?***" if "?" in url else "")
