"""What every subcommand shares: config lookup, exit codes, error reporting."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import platformdirs

from mcp_conductor.client_pool.config import ConductorConfig, load_config
from mcp_conductor.errors import ConfigError

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
    path = find_config(getattr(args, "config", None))
    if announce and not getattr(args, "config", None):
        print(f"using config {path}", file=sys.stderr)
    return load_config(path)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", metavar="FILE",
        help=f"mcpServers JSON (default: $MCP_CONDUCTOR_CONFIG, ./{CONFIG_NAME}, then {default_config_path()})",
    )


def add_state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", metavar="DIR",
        help="where runs, plans and metrics are stored (default: $MCP_CONDUCTOR_STATE_DIR, else the user "
        "state directory)",
    )


def state_dir(args: argparse.Namespace) -> Path:
    from mcp_conductor.server.store import resolve_state_dir

    return resolve_state_dir(getattr(args, "state_dir", None))
