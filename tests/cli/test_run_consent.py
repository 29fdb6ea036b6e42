"""``mcp-conductor run`` and ``runs resume`` ask the person at the terminal; ``--yes`` approves; with neither a
terminal nor ``--yes`` nothing runs (exit 2) and the message names the config line. In process, through
``mcp_conductor.cli.main``: pytest's captured stdin is not a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from fixtures.cli import logging_restored
from mcp_conductor.cli import main
from mcp_conductor.server.store.store import RunStore

PLAN = {
    "steps": [
        {"id": "save", "tool": "notes/put", "arguments": {"key": "draft", "value": "hello"}},
        {"id": "drop", "tool": "notes/delete", "arguments": {"key": "draft"}},
    ]
}


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """``main`` configures logging for the process; in process, that would outlive the test and hide later
    tests' logs from ``capture_logs``: the logging configuration is put back afterwards."""
    with logging_restored():
        yield


@pytest.fixture
def setup(tmp_path: Path) -> tuple[list[str], Path]:
    """The arguments after ``run``, and the notes server's own file (written only by a call that ran)."""
    notes = tmp_path / "notes.json"
    config = {
        "mcpServers": {
            "notes": {
                "command": sys.executable,
                "args": ["-m", "mcp_conductor.demo.notes"],
                "env": {"NOTES_FILE": str(notes)},
            },
            "latency": {
                "command": sys.executable,
                "args": ["-m", "mcp_conductor.demo.latency"],
                "env": {"LATENCY_COUNTER_FILE": str(tmp_path / "counts.json")},
            },
        },
        "conductor": {"consent": {"allow": ["notes/put"]}},
    }
    args = [
        str(write(tmp_path / "plan.json", PLAN)),
        "--config",
        str(write(tmp_path / "config.json", config)),
        "--state-dir",
        str(tmp_path / "state"),
    ]
    return args, notes


def test_without_a_terminal_or_yes_nothing_runs_and_the_config_line_is_named(setup, capsys):
    args, notes = setup
    code = main(["run", *args, "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert '"conductor": {"consent": {"allow": ["notes/delete"]}}' in captured.err
    assert "pass --yes" in captured.err
    result = json.loads(captured.out)
    assert result["status"] == "consent_required" and [s["id"] for s in result["consent"]["steps"]] == ["drop"]
    assert not notes.exists()  # not even the allowed put ran


def test_yes_approves_and_the_decision_is_recorded_as_the_cli(setup, capsys, tmp_path):
    args, notes = setup
    code = main(["run", *args, "--json", "--yes"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["status"] == "succeeded"
    assert notes.exists()  # put, then delete, ran

    async def decisions() -> list[tuple[str, str]]:
        async with RunStore.open(tmp_path / "state") as store:
            return [(c.who, c.decision) for c in await store.get_consents(result["run_id"])]

    assert anyio.run(decisions) == [("cli", "approved")]


def test_runs_resume_asks_again_for_what_has_not_run(setup, capsys):
    args, _ = setup
    plan = {
        "steps": [
            {"id": "save", "tool": "notes/put", "arguments": {"key": "draft", "value": "hello"}},
            {"id": "check", "tool": "latency/flaky", "arguments": {"fail_first": 1}, "depends_on": ["save"]},
            {"id": "drop", "tool": "notes/delete", "arguments": {"key": "draft"}, "depends_on": ["check"]},
        ]
    }
    write(Path(args[0]), plan)
    assert main(["run", *args, "--json", "--yes"]) == 1  # check fails once: drop never ran
    first = json.loads(capsys.readouterr().out)
    code = main(["runs", "resume", first["run_id"], *args[1:], "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 2 and [s["id"] for s in result["consent"]["steps"]] == ["drop"]
    assert main(["runs", "resume", first["run_id"], *args[1:], "--json", "--yes"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "succeeded"


def _on_a_terminal(args: list[str], answer: str) -> tuple[int, str, dict[str, Any]]:
    """Run ``mcp-conductor run ARGS --json`` as a person would, with stdin and stderr on a terminal (a pty) and
    stdout to a pipe; type ``answer`` at the prompt. Returns the exit code, what the terminal showed, the result."""
    import os
    import pty
    import select
    import subprocess
    import time

    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "mcp_conductor", "run", *args, "--json"]
    with subprocess.Popen(command, stdin=follower, stderr=follower, stdout=subprocess.PIPE) as proc:
        os.close(follower)
        shown, deadline = b"", time.monotonic() + 60
        while b"[y/N]" not in shown:
            ready, _, _ = select.select([leader], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no prompt within 60 s; the terminal showed: {shown.decode(errors='replace')}"
            shown += os.read(leader, 4096)
        os.write(leader, answer.encode() + b"\n")
        out, _ = proc.communicate(timeout=60)
    os.close(leader)
    return proc.returncode, shown.decode(errors="replace"), json.loads(out)


@pytest.mark.parametrize(("answer", "code", "status"), [("y", 0, "succeeded"), ("n", 1, "declined")])
def test_the_person_at_a_terminal_is_shown_the_steps_and_their_answer_decides(setup, answer, code, status):
    args, notes = setup
    returncode, shown, result = _on_a_terminal(args, answer)
    assert "drop" in shown and "notes/delete" in shown  # the step that needs consent, listed before the prompt
    assert "save" not in shown.split("[y/N]")[0].split()  # notes/put is allowed by the config: not asked about
    assert (returncode, result["status"]) == (code, status)
    assert notes.exists() is (answer == "y")  # declined: nothing ran, not even the allowed put
