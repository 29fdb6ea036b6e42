"""What every subcommand shares: config lookup, exit codes, error reporting.

Imported when the parser is built, so it imports nothing heavy at the top (the config loader, pydantic and the
store load when a command runs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from mcp_conductor.cli.words import plural
from mcp_conductor.errors import ConductorError, ConfigError

if TYPE_CHECKING:
    from mcp_conductor.client_pool.config_models import ConductorConfig

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and something failed (a server, a run)
EXIT_USAGE = 2  # bad arguments, config or input
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    the command ran but something failed (a server did not start, a run failed)
  2    bad arguments, config file or input file
  130  interrupted (Ctrl-C)
"""

CONFIG_NAME = "mcp-conductor.json"
TOKEN_ENV = "MCP_CONDUCTOR_AUTH_TOKEN"  # also server.http.TOKEN_ENV (a test pins them equal)


class UsageError(ConductorError):
    """A bad argument or input file (exit code 2): an unknown run or step, an unreadable plan file."""

    kind = "usage_error"


def default_config_path() -> Path:
    """Where the config lives when ``--config`` is not given and ``./mcp-conductor.json`` does not exist."""
    return Path(platformdirs.user_config_dir("mcp-conductor")) / "config.json"


def find_config(explicit: str | None) -> Path:
    """Raises:
    ConfigError: no config was given and none exists in the usual places.
    """
    if explicit:
        return Path(explicit)
    env = os.environ.get("MCP_CONDUCTOR_CONFIG")
    for candidate in ([Path(env)] if env else []) + [Path.cwd() / CONFIG_NAME, default_config_path()]:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "no config file found",
        hint=f"pass --config FILE, or create ./{CONFIG_NAME} or {default_config_path()}",
    )


def load(args: argparse.Namespace, *, announce: bool = True) -> ConductorConfig:
    """Raises:
    ConfigError: as ``find_config`` and ``load_config``.
    """
    from mcp_conductor.client_pool.config import load_config
    from mcp_conductor.client_pool.secrets import redact_logs, secret_values

    path = find_config(getattr(args, "config", None))
    if announce and not getattr(args, "config", None):
        print(f"using config {path}", file=sys.stderr)
    config = load_config(path)
    for warning in config.warnings:  # said here, once: the human commands show no log lines
        print(f"warning: {warning}", file=sys.stderr)
    redact_logs(secret_values(config))  # servers echo their keys; the SDK's debug logs print urls
    return config


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help=f"mcpServers JSON (default: $MCP_CONDUCTOR_CONFIG, ./{CONFIG_NAME}, then {default_config_path()})",
    )


def default_state_dir() -> Path:
    """Where runs, plans and metrics live when neither ``--state-dir`` nor ``$MCP_CONDUCTOR_STATE_DIR`` is
    given (``server.store.state_dir.resolve_state_dir`` uses the same)."""
    return Path(platformdirs.user_state_dir("mcp-conductor"))


def add_state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where runs, plans and metrics are stored, in runs.db (default: $MCP_CONDUCTOR_STATE_DIR, else "
        f"{default_state_dir()})",
    )


def state_dir(args: argparse.Namespace) -> Path:
    from mcp_conductor.server.store.state_dir import resolve_state_dir

    return resolve_state_dir(getattr(args, "state_dir", None))


def read_json_file(path: str, what: str, *, hint: str | None = None) -> Any:
    """The parsed JSON content of ``path`` (``-`` reads stdin).

    Raises:
        UsageError: the file is missing, unreadable or not JSON (with line and column).
    """
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        raise UsageError(f"{path}: YAML {what}s are not supported", hint="write the file as JSON")
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(f"{what} file not found: {path}", hint=hint) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} file {path}: {exc}", hint=hint) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            hint="check for a missing comma or quote, or a trailing comma, just before that position",
        ) from exc


def write_output(text: str, output: str | None, said: str) -> None:
    """``text`` to the file ``output`` (then ``said``, e.g. "wrote run X", on stderr), or to stdout.

    Raises:
        UsageError: the file cannot be written.
    """
    if not output:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from exc
    print(f"{said} to {output}", file=sys.stderr)


def unknown_run(run_id: str, directory: Path) -> UsageError:
    return UsageError(
        f"no run {run_id!r} in {directory}",
        hint="`mcp-conductor runs list` shows the runs (use --state-dir for another directory)",
    )


SERVER_WAIT_MARGIN_S = 5.0  # beyond the longest connect timeout, for the spawn and the stop of a failed attempt


def add_wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=float,
        default=None,
        metavar="S",
        help=f"how long to wait for servers to start (default: the longest connect timeout + {SERVER_WAIT_MARGIN_S:g})",
    )


def settle_wait(args: argparse.Namespace, config: ConductorConfig, servers: Iterable[str] | None = None) -> float:
    """``--wait`` if given, else long enough for every (named) server's first connect attempt to end."""
    if getattr(args, "wait", None) is not None:
        return float(args.wait)
    names = list(config.servers) if servers is None else list(servers)
    return max((config.connect_timeout_s(n) for n in names), default=0.0) + SERVER_WAIT_MARGIN_S


def announce_connecting(config: ConductorConfig) -> None:
    """One line on stderr at once, before a command waits for its servers: ``connecting to 3 servers...``."""
    names = [n for n, s in config.servers.items() if not s.settings.disabled]
    if names:
        print(f"connecting to {plural(len(names), 'server')}...", file=sys.stderr, flush=True)
