"""What the command line says, and how: no log lines under human output, plain words, cut text, a quick --help."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from mcp_conductor.cli import build_parser, log_level
from mcp_conductor.cli.doctor import Row, verdict
from mcp_conductor.cli.words import plural, shorten
from mcp_conductor.demo import DEMO_CONFIG_PATH

BOOM = {"command": sys.executable, "args": ["-c", "import sys; print('boom', file=sys.stderr); sys.exit(1)"]}
GOOD = {"command": sys.executable, "args": ["-m", "mcp_conductor.demo.text"]}
FAIL_PLAN = {"steps": [{"id": "f", "tool": "latency/fail", "arguments": {"message": "on purpose"}}]}


def test_doctor_says_a_failure_once_in_its_table_and_logs_it_only_when_verbose(cli, write_json):
    config = write_json("servers.json", {"mcpServers": {"good": GOOD, "boom": BOOM}})
    quiet = cli("doctor", "--config", str(config))
    assert quiet.returncode == 1
    assert "exited before the MCP handshake: boom" in quiet.stdout
    assert quiet.stderr == "connecting to 2 servers...\n"
    verbose = cli("--verbose", "doctor", "--config", str(config))
    assert "pool.server_failed" in verbose.stderr


def test_run_reports_a_failed_step_in_its_summary_and_logs_it_only_when_verbose(cli, write_json, tmp_path):
    plan = write_json("fail.json", FAIL_PLAN)
    args = ("run", str(plan), "--config", str(DEMO_CONFIG_PATH), "--state-dir", str(tmp_path))
    quiet = cli(*args)
    assert quiet.returncode == 1
    assert "f (latency/fail): tool_error" in quiet.stdout
    assert "chain.step_failed" not in quiet.stderr and "[warning" not in quiet.stderr
    assert quiet.stderr.startswith("connecting to 5 servers...\n")  # said at once, before the wait
    assert "chain.step_failed" in cli("--verbose", *args).stderr
    assert "chain.step_failed" in cli("--log-level", "warning", *args).stderr


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["serve"], "warning"),
        (["demo"], "warning"),
        (["doctor"], "critical"),
        (["tools"], "critical"),
        (["runs", "list"], "critical"),
        (["--verbose", "run", "x.json"], "info"),
        (["--debug", "plan", "x.json"], "debug"),
        (["--log-level", "error", "serve"], "error"),
        (["--log-file", "x.log", "run", "x.json"], "warning"),
    ],
)
def test_serve_logs_warnings_and_the_human_commands_log_nothing_unless_asked(argv: list[str], level: str):
    assert log_level(build_parser().parse_args(argv)) == level


def test_counts_are_words_not_parentheses():
    assert [plural(1, "server"), plural(2, "problem"), plural(0, "step")] == ["1 server", "2 problems", "0 steps"]
    sources = Path(__file__).parents[2] / "src" / "mcp_conductor" / "cli"
    found = [hit for p in sources.glob("*.py") for hit in re.findall(r"\b[a-z]+\(s\)", p.read_text(encoding="utf-8"))]
    assert found == []


def row(server: str, state: str, ok: bool = True) -> Row:
    return Row(server, "stdio", state, None, None, ok, None, None)


def test_doctor_says_all_are_fine_only_when_it_checked_them_all():
    assert verdict([row("a", "ready"), row("b", "ready")]) == "all 2 servers are fine"
    assert verdict([row("a", "ready")]) == "the server is fine"
    assert verdict([row("a", "ready"), row("b", "skipped")]) == "1 server is fine; not checked: b (skipped)"
    assert verdict([row("a", "ready"), row("b", "ready"), row("c", "disabled")]) == (
        "2 servers are fine; not checked: c (disabled)"
    )
    assert verdict([row("a", "failed", ok=False), row("b", "ready")]) == "1 of 2 servers failed: a"


def test_text_is_cut_at_a_word_with_an_ellipsis():
    assert shorten("Read the complete contents of a file from the file system", 30) == "Read the complete contents of…"
    assert shorten("  many   spaces\nand lines ", 40) == "many spaces and lines"
    assert shorten("a-very-long-path-without-any-space", 12) == "a-very-long…"
    assert len(shorten("word " * 50, 37)) <= 37


def test_tools_lists_each_server_s_tools_in_aligned_columns(cli, write_json):
    config = write_json("servers.json", {"mcpServers": {"text": GOOD}})
    done = cli("tools", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("text [stdio] ready in ") and "4 tools" in done.stdout
    tools = [line for line in done.stdout.splitlines() if line.startswith("  ")]
    description_starts = {len(line) - len(line[2:].split(" ", 1)[1].lstrip()) for line in tools}
    assert len(tools) == 4 and len(description_starts) == 1
    assert all(len(line) <= 100 for line in tools)


def test_the_light_copies_of_constants_match_their_sources():
    from mcp_conductor.cli import common, runs
    from mcp_conductor.server import http
    from mcp_conductor.server.store.records import RunStatus

    assert common.TOKEN_ENV == http.TOKEN_ENV
    assert tuple(s.value for s in RunStatus) == runs.RUN_STATUSES


def test_help_imports_neither_the_sdk_nor_numpy_rich_or_pydantic():
    """A fresh interpreter: what ``--help`` imports is the point."""
    script = (
        "import contextlib, io, sys\n"
        "from mcp_conductor.cli import main\n"
        "for argv in ARGVS:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & HEAVY)))\n"
    )
    argvs = [["--help"]] + [[*c.split(), "--help"] for c in COMMANDS]
    heavy = {"mcp", "numpy", "rich", "pydantic", "structlog", "anyio", "networkx", "httpx2", "uvicorn"}
    preamble = f"import json\nARGVS = {argvs!r}\nHEAVY = {heavy!r}\n"
    done = subprocess.run([sys.executable, "-c", preamble + script], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


COMMANDS = ("serve", "demo", "tools", "discover", "doctor", "plan", "run", "runs", "runs list", "runs show",
            "runs resume", "runs export", "runs import", "chains", "chains list", "chains show", "chains delete",
            "chains export", "chains import")  # fmt: skip


def test_help_says_where_state_is_kept(cli, cli_home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(cli_home))  # the CLI tests' HOME
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    done = cli("runs", "list", "--help")
    assert done.returncode == 0
    said = "".join(done.stdout.split())  # argparse wraps the path anywhere
    assert "".join(f"else {platformdirs.user_state_dir('mcp-conductor')})".split()) in said
