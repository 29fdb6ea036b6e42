"""End to end: the plan language's five everyday tasks, each one ``execute_chain`` through ``mcp-conductor serve``
over stdio, against real third-party servers: ``@modelcontextprotocol/server-filesystem`` and ``server-memory``
(npm, pinned in tests/e2e/node), PyPI ``mcp-server-git`` (pinned in the dev extra) and the bundled latency server.

The plans are in ``tests/fixtures/plan_language_tasks.py`` (the benchmark counts their calls); these tests check what
the servers hold afterwards.
"""

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.types import ElicitResult

from fixtures.plan_language_tasks import TASKS, Workspace, make_workspace

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).parent / "node"
GIT_VERSION = "2026.10.19"


def node_entry(package: str, *args: str) -> dict[str, Any]:
    """The stdio entry of a pinned npm server, or a failure telling how to install it."""
    pinned = json.loads((NODE_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"][package]
    package_json = NODE_DIR / "node_modules" / package / "package.json"
    if not package_json.is_file():
        pytest.fail(f"{package} is not installed: run `npm ci --prefix tests/e2e/node`", pytrace=False)
    found = json.loads(package_json.read_text(encoding="utf-8"))
    if found["version"] != pinned:
        pytest.fail(f"{package} {found['version']} is installed but {pinned} is pinned", pytrace=False)
    [bin_path] = found["bin"].values() if isinstance(found["bin"], dict) else [found["bin"]]
    return {"command": "node", "args": [str(package_json.parent / bin_path), *args]}


def git_entry(repo: Path) -> dict[str, Any]:
    try:
        version = importlib.metadata.version("mcp-server-git")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("mcp-server-git is not installed: run `pip install -e '.[dev]'`", pytrace=False)
    if version != GIT_VERSION:
        pytest.fail(f"mcp-server-git {version} is installed but {GIT_VERSION} is pinned", pytrace=False)
    return {"command": sys.executable, "args": ["-m", "mcp_server_git", "--repository", str(repo)]}


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "work")


@pytest.fixture
def servers(workspace: Workspace) -> dict[str, Any]:
    return {
        "fs": node_entry("@modelcontextprotocol/server-filesystem", str(workspace.files)),
        "memory": node_entry("@modelcontextprotocol/server-memory")
        | {"env": {"MEMORY_FILE_PATH": str(workspace.memory)}},
        "git": git_entry(workspace.repo),
        "latency": {"command": sys.executable, "args": ["-m", "mcp_conductor.demo.latency"]},
    }


async def person_approves(context: Any, params: Any) -> ElicitResult:
    """The host asks the person before the destructive steps (file writes) run, and the person approves."""
    return ElicitResult(action="accept", content={"approve": True})


async def run_task(
    name: str, workspace: Workspace, servers: dict[str, Any], serve_stdio: Any, make_config: Any, **inputs: Any
) -> dict[str, Any]:
    plan = TASKS[name](workspace, **inputs)
    config = make_config(servers)
    env = {"MCP_CONDUCTOR_STATE_DIR": str(workspace.root / "state")}
    with anyio.fail_after(90):
        async with serve_stdio(config, env=env, elicitation_callback=person_approves) as client:
            result = await client.call_tool("execute_chain", {"plan": plan, "options": {"detail": "steps"}})
    run = result.structured_content
    assert run is not None, result.content
    return run


async def test_a_memory_entity_per_markdown_file_with_the_files_first_line(
    workspace, servers, serve_stdio, make_config
):
    run = await run_task("a_notes_to_memory", workspace, servers, serve_stdio, make_config)
    assert run["status"] == "succeeded", run
    graph = [json.loads(line) for line in workspace.memory.read_text(encoding="utf-8").splitlines()]
    entities = {e["name"]: e["observations"] for e in graph if e["type"] == "entity"}
    assert entities == {"alpha.md": ["# Alpha"], "beta.md": ["# Beta: TODO later"], "gamma.md": ["# Gamma"]}


async def test_the_last_three_commit_messages_written_to_a_file(workspace, servers, serve_stdio, make_config):
    run = await run_task("b_git_log_to_file", workspace, servers, serve_stdio, make_config)
    assert run["status"] == "succeeded", run
    assert (workspace.files / "commits.txt").read_text(encoding="utf-8") == "add d\nadd c\nadd b"


async def test_the_names_of_the_notes_that_contain_todo_written_to_a_file(workspace, servers, serve_stdio, make_config):
    run = await run_task("c_todo_notes_to_file", workspace, servers, serve_stdio, make_config)
    assert run["status"] == "succeeded", run
    assert (workspace.files / "todo.txt").read_text(encoding="utf-8") == "beta.md\ngamma.md"


@pytest.mark.parametrize(("version", "expected", "skipped"), [(3, "upgrade needed", "ok"), (2, "ok", "upgrade")])
async def test_upgrade_needed_or_ok_depending_on_a_number_in_a_json_file(
    workspace, servers, serve_stdio, make_config, version, expected, skipped
):
    (workspace.files / "config.json").write_text(json.dumps({"name": "app", "version": version}), encoding="utf-8")
    run = await run_task("d_version_check", workspace, servers, serve_stdio, make_config)
    steps = {s["id"]: s for s in run["steps"]}
    assert run["status"] == "succeeded", run
    assert (workspace.files / "verdict.txt").read_text(encoding="utf-8") == expected
    assert steps[skipped]["status"] == "skipped"
    assert steps[skipped]["error"]["kind"] == "condition_false"


async def test_a_fan_out_of_fifty_with_five_failing_under_continue_gives_45_values_and_5_nulls(
    workspace, servers, serve_stdio, make_config
):
    run = await run_task("e_fan_out", workspace, servers, serve_stdio, make_config)
    [each] = [s for s in run["steps"] if s["id"] == "each"]
    values = run["outputs"]["each"]
    assert run["status"] == "succeeded", run
    assert len(values) == 50
    assert [i for i, v in enumerate(values) if v is None] == [0, 10, 20, 30, 40]
    assert all(v["ok"] for v in values if v is not None)
    assert each["items"] == {"succeeded": 45, "failed": 5}
    assert [e["index"] for e in each["item_errors"]] == [0, 10, 20, 30, 40]
    assert all("flaky failure" in e["error"]["message"] for e in each["item_errors"])


def test_the_workspace_repository_has_the_commits_the_tasks_read(workspace):
    log = subprocess.run(["git", "log", "--format=%s"], cwd=workspace.repo, capture_output=True, text=True, check=True)
    assert log.stdout.split("\n")[:3] == ["add d", "add c", "add b"]
