"""``mcp-conductor demo``: what a host sees, end to end, on the bundled demo servers (no network, no API key).

It starts ``mcp-conductor serve`` over stdio as a host would, connects with a real MCP client, and prints the
tool list and a few ``discover_tools`` calls (and, where those tools exist, a plan and its execution).

The meta server keeps its state in a fresh temporary directory (deleted at the end) unless ``--state-dir`` is
given, so the demo shows the same numbers on every run and leaves nothing in the user's state directory. Every
line fits an 80-column terminal: descriptions and values are cut at a word boundary with "…".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_conductor.cli.common import EXIT_FAILED, EXIT_OK
from mcp_conductor.cli.words import shorten
from mcp_conductor.demo import DEMO_CONFIG_PATH

if TYPE_CHECKING:  # the command imports the MCP SDK when it runs, not when the parser is built
    from mcp import Client
    from mcp.client import ClientRequestContext
    from mcp.types import ElicitRequestParams, ElicitResult

QUERIES = (
    "count the words in a text",
    "convert a temperature from fahrenheit to celsius",
    "save a note under a key",
    "read a markdown file",
)

PASSED_ENV = ("LANG", "LC_ALL", "TMPDIR", "NO_COLOR")
WIDTH = 80  # every line the demo prints fits an 80-column terminal


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the meta server on the bundled demo servers and show what a host sees",
        description="Start `mcp-conductor serve` on the bundled demo config over stdio, connect to it as an MCP "
        "host would, and print the tool list, tool discovery, a plan and its execution.",
    )
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="give up after S seconds (default 120)")
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="keep the demo's runs, plans and metrics in DIR (default: a fresh temporary directory, deleted at "
        "the end, so every demo starts from nothing)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import anyio

    if args.state_dir:
        return anyio.run(_demo, args.timeout, Path(args.state_dir), True)
    with tempfile.TemporaryDirectory(prefix="mcp-conductor-demo-") as temporary:
        return anyio.run(_demo, args.timeout, Path(temporary), False)


def _section(title: str) -> None:
    title = shorten(title, WIDTH - 4)
    print(f"\n== {title} " + "=" * max(0, WIDTH - 4 - len(title)))


def _say(text: str, indent: str = "  ") -> None:
    """A paragraph wrapped to the terminal width, continuation lines indented two more spaces (a word longer
    than a line, such as a long path, stays whole)."""
    wrapped = textwrap.fill(
        text,
        WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_on_hyphens=False,
        break_long_words=False,
    )
    print(wrapped)


async def _demo(limit_s: float, state_dir: Path, kept: bool) -> int:
    import anyio
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_conductor", "serve", "--config", str(DEMO_CONFIG_PATH), "--state-dir", str(state_dir)],
        env={k: v for k in PASSED_ENV if (v := os.environ.get(k)) is not None},
    )
    where = f"in {state_dir}" if kept else "in a fresh temporary directory (deleted at the end; --state-dir keeps it)"
    _say(f"state: the meta server keeps runs, plans and metrics {where}", indent="")
    with anyio.fail_after(limit_s):
        async with Client(params, elicitation_callback=_approve) as client:
            info = client.server_info
            _section(
                f"connected to {info.name if info else 'mcp-conductor'} over stdio (protocol {client.protocol_version})"
            )
            listed = await client.list_tools()
            _section(f"tools/list: the host sees {len(listed.tools)} tools")
            width = max(len(t.name) for t in listed.tools)
            for tool in listed.tools:
                first_line = (tool.description or "").strip().splitlines()[0]
                print(f"  {tool.name:<{width}}  {shorten(first_line, WIDTH - width - 4)}")
            names = {t.name for t in listed.tools}
            ok = await _discover(client)
            if "plan_chain" in names:
                ok = await _plan_and_run(client, names, state_dir if kept else None) and ok
            if "execute_chain" in names:
                ok = await _consent(client) and ok
    return EXIT_OK if ok else EXIT_FAILED


async def _discover(client: Client) -> bool:
    ok = True
    for query in QUERIES:
        result = await client.call_tool("discover_tools", {"query": query, "top_k": 3, "include_schemas": False})
        _section(f'discover_tools("{query}")')
        if result.is_error or result.structured_content is None:
            print(f"  error: {_text(result)}")
            ok = False
            continue
        found = result.structured_content
        width = max((len(tool["id"]) for tool in found["tools"]), default=0)
        for rank, tool in enumerate(found["tools"], 1):
            head = f"  {rank}. {tool['id']:<{width}}  {tool['score']:5.2f}  "
            print(head + shorten(tool["description"], WIDTH - len(head)))
        for down in found["unavailable_servers"]:
            _say(f"(unavailable: {down['server']} {down['state']}: {down.get('error', 'no error given')})")
            ok = False
    return ok


DEMO_PLAN: dict[str, Any] = {
    "inputs": {"path": "notes/today.md"},
    "steps": [
        {"id": "read", "tool": "files/read_text", "arguments": {"path": "${inputs.path}"}},
        {"id": "stats", "tool": "text/word_stats", "arguments": {"text": "${steps.read.text}"}},
        {"id": "kw", "tool": "text/keywords", "arguments": {"text": "${steps.read.text}", "top": 5}},
        {
            "id": "save",
            "tool": "notes/put",
            "arguments": {"key": "summary", "value": "${steps.stats.words} words; keywords: ${steps.kw.keywords}"},
        },
    ],
    "outputs": ["stats", "kw", "save"],
}


async def _plan_and_run(client: Client, names: set[str], state_dir: Path | None) -> bool:
    result = await client.call_tool("plan_chain", {"plan": DEMO_PLAN})
    _section("plan_chain: read a file, stats and keywords in parallel, save")
    planned = result.structured_content or {}
    if result.is_error or not planned.get("valid"):
        print(f"  invalid plan: {json.dumps(planned.get('errors') or _text(result), indent=2)}")
        return False
    print(f"  plan_id   {planned['plan_id']}")
    print(f"  levels    {planned['levels']}")
    print(f"  critical  {' -> '.join(planned['critical_path'])}  (~{planned['estimated_latency_ms']:.0f} ms)")
    if "execute_chain" not in names:
        return True
    result = await client.call_tool("execute_chain", {"plan_id": planned["plan_id"], "options": {"detail": "steps"}})
    run = result.structured_content or {}
    _section(f"execute_chain: {run.get('status', 'error')} in {run.get('duration_ms', 0):.0f} ms")
    if result.is_error:
        print(f"  error: {_text(result)}")
        return False
    id_width = max(len(step["id"]) for step in run["steps"])
    tool_width = max(len(step["tool"]) for step in run["steps"])
    for step in run["steps"]:
        duration = f"{step.get('duration_ms') or 0:.1f} ms"
        print(f"  {step['id']:<{id_width}}  {step['tool']:<{tool_width}}  {step['status']:<9}  {duration:>9}")
    print("  outputs:")
    for step_id, value in run["outputs"].items():
        head = f"    {step_id}: "
        print(head + shorten(json.dumps(value), WIDTH - len(head)))
    if state_dir is not None:
        _say(f"(stored: mcp-conductor runs show {run['run_id']} --state-dir {state_dir})")
    else:
        _say("(stored in the temporary state directory; run the demo with --state-dir DIR to keep it)")
    await _measured(client)
    return bool(run.get("status") == "succeeded")


async def _measured(client: Client) -> None:
    """After a run, the measured latencies flow back into planning and discovery."""
    again = (await client.call_tool("plan_chain", {"plan": DEMO_PLAN, "detail": "plan"})).structured_content or {}
    _section("metrics flow back: plan_chain and discover_tools after the run")
    basis = sorted(set((again.get("estimate_basis") or {}).values()))
    print(f"  estimated_latency_ms {again.get('estimated_latency_ms', 0):.1f} (basis: {', '.join(basis)})")
    found = await client.call_tool(
        "discover_tools",
        {"query": "count the words in a text", "top_k": 1, "include_schemas": False, "detail": "full"},
    )
    for tool in (found.structured_content or {}).get("tools", []):
        _say(f"{tool['id']}: stats {json.dumps(tool.get('stats'))}")


CLEANUP_PLAN: dict[str, Any] = {"steps": [{"id": "tidy", "tool": "notes/delete", "arguments": {"key": "summary"}}]}


async def _approve(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    """The scripted host: show the form as a person would see it, and approve."""
    from mcp.types import ElicitResult

    print("  the host asks the person:")
    for line in params.message.splitlines():
        print(f"    | {line}")
    print("  the person approves")
    return ElicitResult(action="accept", content={"approve": True})


async def _consent(client: Client) -> bool:
    """A destructive step (notes/delete) is not run before the person approves it through the host."""
    _section("consent: notes/delete is destructive, so execute_chain asks first")
    planned = (await client.call_tool("plan_chain", {"plan": CLEANUP_PLAN})).structured_content or {}
    print(f"  plan_chain effects: {json.dumps(planned.get('effects'))}")
    result = await client.call_tool("execute_chain", {"plan": CLEANUP_PLAN})
    run = result.structured_content or {}
    print(f"  execute_chain: {run.get('status')} {json.dumps(run.get('outputs'))}")
    print("  (to run it without asking, the config would say")
    print('     "conductor": {"consent": {"allow": ["notes/delete"]}})')
    return run.get("status") == "succeeded"


def _text(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)
