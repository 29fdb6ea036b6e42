"""End to end with the MCP Inspector's CLI (npm) as a real third-party host of ``mcp-conductor serve``.

CI installs it: ``npm ci --prefix tests/e2e/node`` (pinned in ``tests/e2e/node/package-lock.json``). A missing
install fails these tests rather than skipping them. Each inspector run starts its own meta server over stdio,
makes one request, prints the result as JSON on stdout and stops the server.

How the inspector CLI 0.15.0 reads its argv shapes every command line here:

- Its own options go before ``--`` and the server's command after it: the launcher takes a ``--config`` before
  ``--`` as its own servers file, and the server needs ``--config`` too.
- ``--tool-arg`` takes several values, so it comes before ``--tool-name``; last, it would swallow the server's
  command as another ``key=value`` pair.
- A ``--tool-arg`` value is parsed as JSON when the tool's input schema types that argument ``object`` or
  ``array`` (plan_chain's ``plan``); otherwise it is sent as a string.
- The server inherits the inspector's whole environment (plus any ``-e KEY=VALUE``), so the inspector is started
  with only PATH and HOME, as a host would be, and the state directory is given as ``--state-dir``.
"""

import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest

import mcp_conductor.demo

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).parent / "node"
INSPECTOR = "@modelcontextprotocol/inspector"
DEMO_CONFIG = Path(mcp_conductor.demo.__file__).parent / "demo_config.json"

KM_TO_MI_PLAN = {
    "steps": [
        {"id": "km", "tool": "math/convert_units", "arguments": {"value": 5, "from_unit": "km", "to_unit": "mi"}},
        {"id": "sum", "tool": "math/add", "arguments": {"a": 1, "b": 2}},
        {"id": "double", "tool": "math/multiply", "arguments": {"a": "${steps.km.value}", "b": 2}},
    ]
}


def inspector_bin() -> Path:
    """The pinned inspector's CLI script, or a failure telling how to install it."""
    pinned = json.loads((NODE_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"][INSPECTOR]
    package_json = NODE_DIR / "node_modules" / INSPECTOR / "package.json"
    if not package_json.is_file():
        pytest.fail(f"{INSPECTOR} is not installed: run `npm ci --prefix tests/e2e/node`", pytrace=False)
    package = json.loads(package_json.read_text(encoding="utf-8"))
    if package["version"] != pinned:
        pytest.fail(
            f"{INSPECTOR} {package['version']} is installed but {pinned} is pinned: "
            "run `npm ci --prefix tests/e2e/node`",
            pytrace=False,
        )
    return package_json.parent / package["bin"]["mcp-inspector"]


def meta_server_argv(state_dir: Path) -> list[str]:
    return [sys.executable, "-m", "mcp_conductor", "serve", "--config", str(DEMO_CONFIG), "--state-dir", str(state_dir)]


HostEnv = Callable[..., dict[str, str]]
WaitGone = Callable[[psutil.Process], Awaitable[None]]


async def inspect(tmp_path: Path, host_env: HostEnv, wait_gone: WaitGone, *request: str) -> dict[str, Any]:
    """Run ``mcp-inspector --cli *request -- <meta server>`` in ``tmp_path`` and return the JSON it prints.

    Every process of the run (inspector, meta server, demo servers) has ``tmp_path`` as its working directory;
    all of them must be gone within a few seconds of the inspector's exit.
    """
    argv = ["node", str(inspector_bin()), "--cli", *request, "--", *meta_server_argv(tmp_path / "state")]
    with anyio.fail_after(60):
        done = await anyio.run_process(argv, cwd=tmp_path, env=host_env(), check=False)
    with anyio.fail_after(10):
        for process in started_in(tmp_path):
            await wait_gone(process)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)


def started_in(directory: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        with suppress(psutil.Error):
            if Path(process.cwd()) == directory.resolve():
                found.append(process)
    return found


async def test_inspector_lists_exactly_the_three_meta_tools(tmp_path: Path, host_env, wait_gone):
    listed = await inspect(tmp_path, host_env, wait_gone, "--method", "tools/list")
    assert sorted(tool["name"] for tool in listed["tools"]) == ["discover_tools", "execute_chain", "plan_chain"]


async def test_inspector_discovers_convert_units_first_for_kilometers_to_miles(tmp_path: Path, host_env, wait_gone):
    request = ["--method", "tools/call", "--tool-arg", "query=convert kilometers to miles", "--tool-name"]
    result = await inspect(tmp_path, host_env, wait_gone, *request, "discover_tools")
    assert not result["isError"]
    assert result["structuredContent"]["tools"][0]["id"] == "math/convert_units"
    assert json.loads(result["content"][0]["text"])["tools"][0]["id"] == "math/convert_units"


async def test_inspector_passes_a_plan_object_to_plan_chain_and_gets_its_levels(tmp_path: Path, host_env, wait_gone):
    request = ["--method", "tools/call", "--tool-arg", f"plan={json.dumps(KM_TO_MI_PLAN)}", "--tool-name"]
    result = await inspect(tmp_path, host_env, wait_gone, *request, "plan_chain")
    planned = result["structuredContent"]
    assert not result["isError"]
    assert planned["valid"] is True, planned.get("errors")
    assert planned["levels"] == [["km", "sum"], ["double"]]
    assert planned["critical_path"] == ["km", "double"]


async def test_a_plan_id_from_one_inspector_session_executes_in_the_next(tmp_path: Path, host_env, wait_gone):
    planning = ["--method", "tools/call", "--tool-arg", f"plan={json.dumps(KM_TO_MI_PLAN)}", "--tool-name"]
    planned = (await inspect(tmp_path, host_env, wait_gone, *planning, "plan_chain"))["structuredContent"]
    running = ["--method", "tools/call", "--tool-arg", f"plan_id={planned['plan_id']}", "--tool-name"]
    result = await inspect(tmp_path, host_env, wait_gone, *running, "execute_chain")
    run = result["structuredContent"]
    assert not result["isError"]
    assert run["status"] == "succeeded", run
    assert run["outputs"] == {"sum": {"result": 3.0}, "double": {"result": 6.21371192238}}
