"""Load a Claude Desktop ``mcpServers`` config into typed, validated settings.

The file is Claude Desktop's own ``claude_desktop_config.json`` shape, so a user can point mcp-conductor at the
file they already have::

    {
      "mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "${HOME}/notes"]},
        "remote": {"type": "http", "url": "https://example.test/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}
      },
      "conductor": {
        "defaults": {"timeout_s": 60, "connect_timeout_s": 30, "max_concurrency": 16},
        "servers": {"files": {"timeout_s": 10, "tools": {"deny": ["write_file"]}}}
      }
    }

Conductor-only settings live in the top-level ``conductor`` object, which Claude Desktop ignores. ``${VAR}`` and
``${VAR:-default}`` expand from the environment in ``command``, ``args``, ``env``, ``cwd``, ``url`` and
``headers``; ``${CONDUCTOR_PYTHON}`` defaults to the interpreter running mcp-conductor. A disabled server's unset
variables are left as they are (it never starts, so they are only required once it is enabled). Secret values
(env and header values) are kept out of ``repr``, logs and error messages. Claude Desktop's other top-level keys
are ignored; one that looks like a misspelled ``conductor`` is logged and listed in ``ConductorConfig.warnings``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, TypeVar, get_args

import structlog
from pydantic import BaseModel, ValidationError

from mcp_conductor.client_pool.catalog import ServerName
from mcp_conductor.client_pool.config_models import (
    _FOREIGN_SERVER_KEYS,
    _SERVER_NAME,
    _VAR,
    DEFAULT_GLOBAL_CONCURRENCY,
    DEFAULT_KEEP_RUNS,
    DEFAULT_OUTPUT_BUDGET_BYTES,
    ConductorConfig,
    ConductorSection,
    Defaults,
    EngineSettings,
    InProcessServer,
    RemoteServer,
    ServerConfig,
    ServerSettings,
    StdioServer,
    _RemoteEntry,
    _StdioEntry,
)
from mcp_conductor.client_pool.consent_policy import ConsentPolicy
from mcp_conductor.errors import ConfigError
from mcp_conductor.suggest import close_matches, did_you_mean

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> ConductorConfig:
    """Read and validate a config file.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid JSON (with line and column), or has
            invalid entries (every problem is listed, with server, field and what was expected).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {p}", hint="pass --config with an existing file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from exc
    return parse_config(text, source=str(p), environ=environ)


def parse_config(text: str, *, source: str = "<config>", environ: Mapping[str, str] | None = None) -> ConductorConfig:
    """Validate config text (see ``load_config``).

    Raises:
        ConfigError: as ``load_config``.
    """
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            hint="check for a missing comma or quote, or a trailing comma, just before that position",
        ) from exc
    return build_config(raw, source=source, environ=environ)


def build_config(raw: Any, *, source: str = "<config>", environ: Mapping[str, str] | None = None) -> ConductorConfig:
    """Validate an already-parsed config object (see ``load_config``).

    Raises:
        ConfigError: as ``load_config``.
    """
    env = _expansion_env(environ)
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(f'{source}: the config must be a JSON object with an "mcpServers" object')
    entries = raw.get("mcpServers")
    if entries is None:
        close = close_matches("mcpServers", raw, n=1)
        hint = f' (found "{close[0]}": did you mean "mcpServers"?)' if close else ""
        raise ConfigError(f'{source}: no "mcpServers" object{hint}', hint='add "mcpServers": {NAME: {...}}')
    if not isinstance(entries, dict):
        raise ConfigError(f'{source}: "mcpServers" must be an object mapping server names to entries')

    warnings = _top_level_warnings(raw, source)  # logged even when the config fails: a near miss may explain why
    section = raw.get("conductor", {})
    conductor = _validate(ConductorSection, section, "conductor", problems)
    # Checked even when the section is invalid, so a typo in "defaults" does not hide one in a server name.
    raw_settings = section.get("servers") if isinstance(section, dict) else None
    raw_settings = raw_settings if isinstance(raw_settings, dict) else {}
    for name in raw_settings:
        if name not in entries:
            problems.append(f'conductor.servers.{name}: no server "{name}" in mcpServers{did_you_mean(name, entries)}')
    all_settings = conductor.servers if conductor else _valid_settings(raw_settings)

    servers: dict[ServerName, ServerConfig] = {}
    skipped: list[str] = []
    for name, entry in entries.items():
        where = f"mcpServers.{name}"
        if not _SERVER_NAME.match(name) or "/" in name:
            problems.append(f"{where}: server names may use letters, digits, '_', '-' and '.' (max 64 characters)")
            continue
        if not isinstance(entry, dict):
            problems.append(f'{where}: expected an object with "command" (stdio) or "url" (remote)')
            continue
        settings = all_settings.get(name, ServerSettings())
        server = _build_server(name, entry, settings, env, problems)
        if server is None:
            continue
        if isinstance(server, StdioServer) and _runs_conductor(server):
            log.warning("config.self_reference_skipped", server=name)
            skipped.append(name)
            continue
        servers[ServerName(name)] = server

    if problems:
        count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise ConfigError(f"{source}: {count} in the config:\n" + "\n".join(f"  - {p}" for p in problems))
    return ConductorConfig(
        servers=servers,
        defaults=conductor.defaults if conductor else Defaults(),
        max_global_concurrency=conductor.max_concurrency if conductor else DEFAULT_GLOBAL_CONCURRENCY,
        keep_runs=conductor.keep_runs if conductor else DEFAULT_KEEP_RUNS,
        output_budget_bytes=conductor.output_budget_bytes if conductor else DEFAULT_OUTPUT_BUDGET_BYTES,
        consent=conductor.consent if conductor else ConsentPolicy(),
        engine=conductor.engine if conductor else EngineSettings(),
        source=source,
        skipped=tuple(skipped),
        warnings=warnings,
    )


def _valid_settings(raw_settings: dict[str, Any]) -> dict[str, ServerSettings]:
    """The per-server settings that validate on their own (the section's problems are already listed)."""
    settings = {name: _validate(ServerSettings, value, "", []) for name, value in raw_settings.items()}
    return {name: value for name, value in settings.items() if value is not None}


def _top_level_warnings(raw: dict[str, Any], source: str) -> tuple[str, ...]:
    """Warn about a top-level key that looks like a misspelled ``conductor`` (Claude Desktop's own keys, such as
    ``globalShortcut``, are far from it and stay silent)."""
    warnings = []
    for key in raw:
        if key == "conductor" or not close_matches(str(key).lower(), ["conductor"], cutoff=0.8):
            continue
        log.warning("config.unknown_top_level_key", key=key, suggestion="conductor", source=source)
        warnings.append(f'{source}: unknown top-level key "{key}" is ignored (did you mean "conductor"?)')
    return tuple(warnings)


def _build_server(
    name: str, entry: dict[str, Any], settings: ServerSettings, env: Mapping[str, str], problems: list[str]
) -> ServerConfig | None:
    where = f"mcpServers.{name}"
    entry = {k: v for k, v in entry.items() if k not in _FOREIGN_SERVER_KEYS}
    kind = entry.get("type")
    if "url" in entry or kind in ("http", "streamable-http", "streamableHttp", "sse"):
        if "url" not in entry:
            problems.append(f'{where}: a remote server (type "{kind}") needs a "url"')
            return None
        remote = _validate(_RemoteEntry, entry, where, problems)
        if remote is None:
            return None
        disabled = remote.disabled or settings.disabled
        missing = None if disabled else problems
        return RemoteServer(
            name=name,
            url=_expand(remote.url, env, where, "url", missing),
            transport="sse" if remote.type == "sse" else "streamable-http",
            headers={k: _expand(v, env, where, f"headers.{k}", missing) for k, v in remote.headers.items()},
            settings=settings.model_copy(update={"disabled": disabled}),
        )
    if "command" not in entry:
        known = {*_StdioEntry.model_fields, *_RemoteEntry.model_fields}
        unknown = "".join(f'; unknown key "{k}"{did_you_mean(k, known)}' for k in entry if k not in known)
        problems.append(f'{where}: needs "command" (a stdio server) or "url" (a remote server){unknown}')
        return None
    stdio = _validate(_StdioEntry, entry, where, problems)
    if stdio is None:
        return None
    disabled = stdio.disabled or settings.disabled
    missing = None if disabled else problems
    return StdioServer(
        name=name,
        command=_expand(stdio.command, env, where, "command", missing),
        args=tuple(_expand(a, env, where, f"args[{i}]", missing) for i, a in enumerate(stdio.args)),
        env={k: _expand(v, env, where, f"env.{k}", missing) for k, v in stdio.env.items()},
        cwd=_expand(stdio.cwd, env, where, "cwd", missing) if stdio.cwd else None,
        settings=settings.model_copy(update={"disabled": disabled}),
    )


def _validate(model: type[M], data: Any, where: str, problems: list[str]) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            loc = ".".join(str(p) for p in err["loc"])
            field = f"{where}.{loc}" if loc else where
            if err["type"] == "extra_forbidden":
                key = str(err["loc"][-1])
                problems.append(f'{field}: unknown key "{key}"{did_you_mean(key, _keys(model))}')
            elif err["type"] == "missing":
                problems.append(f"{field}: required but missing")
            else:
                problems.append(f"{field}: {err['msg'].lower()}")
        return None


def _keys(model: type[BaseModel]) -> set[str]:
    """Field names of ``model`` and of the models nested in it (an unknown key may sit at any depth)."""
    keys = set(model.model_fields)
    pending = [f.annotation for f in model.model_fields.values()]
    while pending:
        tp = pending.pop()
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            keys |= _keys(tp)
        else:
            pending.extend(get_args(tp))
    return keys


def _expansion_env(environ: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    env.setdefault("CONDUCTOR_PYTHON", sys.executable)
    return env


def _expand(value: str, env: Mapping[str, str], where: str, field: str, problems: list[str] | None) -> str:
    """``value`` with its variables expanded; an unset one without a default is a problem, or, when ``problems``
    is None (a disabled server, which never starts), is left as written."""

    def sub(m: re.Match[str]) -> str:
        var, default = m.group(1), m.group(2)
        if var in env:
            return env[var]
        if default is not None:
            return default
        if problems is None:
            return m.group(0)
        problems.append(
            f"{where}.{field}: environment variable ${{{var}}} is not set (set it, or write ${{{var}:-default}})"
        )
        return ""

    return _VAR.sub(sub, value)


def _runs_conductor(server: StdioServer) -> bool:
    """True when the entry would start mcp-conductor itself (recursion); demo servers are fine."""
    words = [PurePath(server.command).name, *server.args]
    if any(w in ("mcp-conductor", "mcp_conductor") or w.startswith("mcp-conductor@") for w in words):
        return True
    return any(a == "-m" and b == "mcp_conductor" for a, b in itertools.pairwise(words))


def in_process_config(
    servers: Mapping[str, Any], *, defaults: Defaults | None = None, consent: ConsentPolicy | None = None
) -> ConductorConfig:
    """A config of in-process ``MCPServer`` objects by name (tests, embedding)."""
    return ConductorConfig(
        servers={ServerName(name): InProcessServer(name=name, server=srv) for name, srv in servers.items()},
        defaults=defaults or Defaults(),
        consent=consent or ConsentPolicy(),
        source="<in-process>",
    )
