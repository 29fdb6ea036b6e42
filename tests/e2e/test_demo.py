"""The README's main job: ``mcp-conductor demo`` on the bundled demo servers, as a newcomer runs it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_the_demo_discovers_plans_runs_and_shows_metrics_flowing_back(tmp_path: Path) -> None:
    env = {k: v for k in ("PATH", "HOME") if (v := os.environ.get(k)) is not None}
    env["MCP_CONDUCTOR_STATE_DIR"] = str(tmp_path / "state")
    done = subprocess.run(
        [sys.executable, "-m", "mcp_conductor", "demo", "--timeout", "90"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert "the host sees 3 tools" in out
    assert "1. text/word_stats" in out  # "count the words in a text"
    assert "1. math/convert_units" in out  # "convert a temperature from fahrenheit to celsius"
    assert "levels    [['read'], ['stats', 'kw'], ['save']]" in out
    assert "execute_chain: succeeded" in out
    assert "(basis: measured)" in out
    assert '"calls": ' in out  # discover_tools shows the word_stats calls the run made
    assert '    | - tidy: notes/delete (destructive) key="summary"' in out  # the scripted host was asked
    assert 'execute_chain: succeeded {"tidy"' in out  # and approved
    assert (tmp_path / "state" / "runs.db").is_file()
