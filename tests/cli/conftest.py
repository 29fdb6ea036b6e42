"""Fixtures of the CLI tests: every command runs in this process, through the real entry point ``main(argv)``
(see ``fixtures.cli``). Tests where a real process is the point (Ctrl-C, ``serve``) start one themselves.
(Helpers are fixtures, not imports: conftest modules outside a package all share the module name ``conftest``.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import Done, run_main

Cli = Callable[..., Done]
WriteJson = Callable[[str, Any], Path]


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
