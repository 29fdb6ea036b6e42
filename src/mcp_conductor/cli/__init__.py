"""The ``mcp-conductor`` command line: one program, a subcommand per job.

Building the parser imports nothing heavy (no MCP SDK, numpy, rich or pydantic), so ``--help`` answers at once:
each command module imports what its command needs inside the functions that run it.

Logs: ``serve`` and ``demo`` log warnings to stderr. The commands whose output is made for a person (``doctor``,
``tools``, ``discover``, ``plan``, ``run``, ``runs``) report each failure in their table or summary, so they log
nothing unless asked (``--verbose``, ``--debug`` or ``--log-level``).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from mcp_conductor import __version__
from mcp_conductor.cli import chains, demo, discover, doctor, plan, run, runs, serve, temporal_dev, tools, worker
from mcp_conductor.cli.common import EXIT_CODES_HELP, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from mcp_conductor.errors import ConductorError, ConfigError

COMMANDS = (serve, demo, tools, discover, doctor, plan, run, runs, chains, worker, temporal_dev)
QUIET_COMMANDS = frozenset({"doctor", "tools", "discover", "plan", "run", "runs", "chains"})
DEFAULT_LOG_LEVEL = "warning"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-conductor",
        description="One MCP server that discovers, plans and runs tool chains over many MCP servers.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mcp-conductor {__version__}")
    parser.add_argument("--debug", action="store_true", help="debug logs, and tracebacks on errors")
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="info logs on stderr (doctor, tools, plan, run and runs log nothing without it)",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["debug", "info", "warning", "error"],
        help=f"log level on stderr (default {DEFAULT_LOG_LEVEL} for serve and demo; none for the other commands)",
    )
    parser.add_argument("--log-json", action="store_true", help="log JSON lines instead of text")
    parser.add_argument("--log-file", metavar="FILE", help="append logs to FILE instead of stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from mcp_conductor.logs import configure_logging

    stream = open(args.log_file, "a", encoding="utf-8") if args.log_file else None  # noqa: SIM115
    configure_logging(log_level(args), json=args.log_json, stream=stream)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout's reader went away (`| head`): no traceback, and no second error when Python flushes stdout
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except (ConductorError, BaseExceptionGroup) as exc:
        error = _conductor_error(exc)
        if error is None:
            raise
        if args.debug:
            traceback.print_exc()
        print(f"error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, ConfigError | UsageError) else EXIT_FAILED
    finally:
        if stream is not None:
            stream.close()


def log_level(args: argparse.Namespace) -> str:
    """``--debug``, else ``--log-level``, else ``--verbose`` (info), else the command's default: no logs under a
    command's human output (its table or summary says each fact once; warnings still go to a ``--log-file``),
    warnings for ``serve`` and ``demo``."""
    if args.debug:
        return "debug"
    if args.log_level:
        return str(args.log_level)
    if args.verbose:
        return "info"
    quiet = args.command in QUIET_COMMANDS and not args.log_file
    return "critical" if quiet else DEFAULT_LOG_LEVEL


def _conductor_error(exc: BaseException) -> ConductorError | None:
    """The error to report: ``exc`` itself, or the first ConductorError inside an exception group (task groups
    wrap what their tasks raise)."""
    if isinstance(exc, ConductorError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _conductor_error(inner)) is not None:
                return found
    return None
