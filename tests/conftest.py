"""Fixtures for the whole suite.

structlog is configured once, as the CLI configures it, so library defaults (which log only warnings) do not
hide the info events tests capture with ``structlog.testing.capture_logs``.

``_real_state_dir_untouched``: no test may write to the real user state directory (where ``serve`` keeps runs
when neither ``--state-dir`` nor ``$MCP_CONDUCTOR_STATE_DIR`` is given): every process a test starts gets a
temporary ``HOME`` or state directory. The suite fails if anything appears in, changes in or disappears from
that directory while it runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest

from mcp_conductor.logs import configure_logging

pytest_plugins = ("fixtures.temporal", "fixtures.temporal_workers")  # skipped without the temporal extra

configure_logging("info")


def state_dir_listing(directory: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``directory`` with its size and modification time (empty when it does not exist)."""
    listing = {}
    for path in directory.rglob("*") if directory.is_dir() else ():
        stat = path.stat()
        listing[str(path.relative_to(directory))] = (stat.st_size, stat.st_mtime_ns)
    return listing


@pytest.fixture(scope="session", autouse=True)
def _real_state_dir_untouched() -> Iterator[None]:
    real = Path(platformdirs.user_state_dir("mcp-conductor"))
    existed = real.exists()
    before = state_dir_listing(real)
    yield
    after = state_dir_listing(real)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    if changed or real.exists() != existed:
        pytest.fail(
            f"the suite wrote to the real user state directory {real}: {', '.join(changed) or real.name}; "
            "give every process a test starts a temporary HOME or --state-dir",
            pytrace=False,
        )
