"""Fixtures of the CLI tests: every command runs in this process, through the real entry point ``main(argv)``.

A command's stdout and stderr are captured, its environment is ours without the conductor's variables, without
colors and with a temporary ``HOME``, and the logging it configures is undone afterwards (so a later test's
``capture_logs`` still sees every event). Tests where a real process is the point (Ctrl-C, ``serve``) start
one themselves. (Helpers are fixtures, not imports: conftest modules outside a package all share the module
name ``conftest``.)
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog._config import BoundLoggerLazyProxy

from mcp_conductor.cli import main


@dataclass(frozen=True, slots=True)
class Done:
    """What a command did: like ``subprocess.CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Done]
WriteJson = Callable[[str, Any], Path]
NAMED_LOGGERS = ("mcp.client.stdio", "httpx2", "httpcore", "uvicorn.access")


def cli_env(home: Path) -> dict[str, str]:
    """Our environment without the conductor's own variables and without colors; ``HOME`` is ``home``, so the
    default state and config directories are temporary too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_CONDUCTOR_") and not k.startswith("XDG_")}
    return env | {"NO_COLOR": "1", "HOME": str(home)}


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def logging_restored() -> Iterator[None]:
    """Undo what ``main`` configures: structlog's config, the loggers it cached, the stdlib handlers and levels."""
    saved = structlog.get_config()
    processors = list(saved["processors"])
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in NAMED_LOGGERS}
    try:
        yield
    finally:
        saved["processors"][:] = processors
        structlog.configure(**saved)
        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("mcp_conductor"):
                for value in list(vars(module).values()):
                    if isinstance(value, BoundLoggerLazyProxy):
                        value.__dict__.pop("bind", None)  # cache_logger_on_first_use replaced it
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def run_main(home: Path, *args: str) -> Done:
    """``mcp-conductor *args`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with environment(cli_env(home)), logging_restored(), redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help, bad arguments
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return Done(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def cli(cli_home: Path) -> Cli:
    """``cli(*args)``: run ``mcp-conductor *args`` to completion in this process; returns a ``Done``."""

    def run(*args: str) -> Done:
        return run_main(cli_home, *args)

    return run


@pytest.fixture
def write_json(tmp_path: Path) -> WriteJson:
    """``write_json(name, data)``: a JSON file in the test's temporary directory."""

    def write(name: str, data: Any) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return write
