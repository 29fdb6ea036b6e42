"""Fixtures of the CLI tests: every command runs through the real entry point in a subprocess.

(Helpers are fixtures, not imports: conftest modules outside a package all share the module name ``conftest``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]
WriteJson = Callable[[str, Any], Path]


def cli_env() -> dict[str, str]:
    """Our environment without the conductor's own variables, and without colors (stdout is a pipe anyway)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_CONDUCTOR_")}
    return env | {"NO_COLOR": "1"}


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "mcp_conductor", *args]


@pytest.fixture(scope="session")
def cli() -> Cli:
    """``cli(*args)``: run ``python -m mcp_conductor *args`` to completion; returns the CompletedProcess."""

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cli_argv(*args), capture_output=True, text=True, env=cli_env(), timeout=timeout)

    return run


@pytest.fixture
def write_json(tmp_path: Path) -> WriteJson:
    """``write_json(name, data)``: a JSON file in the test's temporary directory."""

    def write(name: str, data: Any) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return write
