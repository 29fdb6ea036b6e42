"""The README's main job: ``mcp-conductor demo`` on the bundled demo servers, as a newcomer runs it (in this
process; the demo itself starts ``serve`` as a host would)."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest


def test_the_demo_discovers_plans_runs_and_shows_metrics_flowing_back_in_80_columns(cli, tmp_path: Path) -> None:
    done = cli("demo", "--timeout", "90", "--state-dir", str(tmp_path / "state"))
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"keeps runs, plans and metrics in {tmp_path / 'state'}" in " ".join(out.split())
    assert "the host sees 3 tools" in out
    assert "1. text/word_stats" in out  # "count the words in a text"
    assert "1. math/convert_units" in out  # "convert a temperature from fahrenheit to celsius"
    assert "levels    [['read'], ['stats', 'kw'], ['save']]" in out
    assert "execute_chain: succeeded" in out
    assert "(basis: measured)" in out
    assert '"calls": 1,' in out  # discover_tools shows the word_stats call the run made
    assert (tmp_path / "state" / "runs.db").is_file()
    assert "--state-dir" in out.split("outputs:")[1]  # how to look at the stored run
    too_wide = [line for line in out.splitlines() if len(line) > 80 and str(tmp_path) not in line]
    assert too_wide == []
    assert "…" in out  # long descriptions are cut at a word, with an ellipsis


def test_the_demo_starts_from_a_fresh_temporary_state_directory_unless_told_otherwise(
    cli, cli_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The user state directory the CLI tests see (their HOME is cli_home): fill it with one demo's runs first.
    monkeypatch.setenv("HOME", str(cli_home))
    for name in ("XDG_STATE_HOME", "MCP_CONDUCTOR_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    user_state = Path(platformdirs.user_state_dir("mcp-conductor"))
    assert cli("demo", "--timeout", "90", "--state-dir", str(user_state)).returncode == 0

    done = cli("demo", "--timeout", "90")
    assert done.returncode == 0, done.stderr[-2000:]
    said = " ".join(done.stdout.split())
    assert "in a fresh temporary directory (deleted at the end; --state-dir keeps it)" in said
    assert '"calls": 1,' in done.stdout  # the same numbers as a first demo, not the runs before it
