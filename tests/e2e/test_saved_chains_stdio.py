"""Saved chains end to end: a host talks to ``mcp-conductor serve`` over stdio (real demo servers, each its own
process), saves a chain, finds it with discover_tools, runs it by name and from another plan's step, and a
second ``serve`` over the same state directory still has it."""

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from mcp_conductor.demo import DEMO_CONFIG_PATH

pytestmark = pytest.mark.e2e

SHOUT = {
    "inputs": {"text": "quiet words"},
    "steps": [
        {"id": "upper", "tool": "text/convert_case", "arguments": {"text": "${inputs.text}", "mode": "upper"}},
        {"id": "stats", "tool": "text/word_stats", "arguments": {"text": "${steps.upper.text}"}},
    ],
    "outputs": ["upper", "stats"],
}
SAVE_AS = {
    "name": "shout-text",
    "description": "Shout a text in capital letters and count its words",
    "inputs": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert result.structured_content is not None, result.content
    return result.structured_content


async def test_a_chain_saved_over_stdio_is_found_run_by_name_used_as_a_step_and_kept_across_restarts(
    tmp_path: Path, serve_stdio
):
    state = str(tmp_path / "state")
    outer = {
        "steps": [
            {"id": "loud", "tool": "chain/shout-text", "arguments": {"text": "saved chains work"}},
            {
                "id": "again",
                "tool": "text/convert_case",
                "arguments": {"text": "${steps.loud.upper.text}", "mode": "kebab"},
            },
        ]
    }
    with anyio.fail_after(60):
        async with serve_stdio(DEMO_CONFIG_PATH, "--state-dir", state) as client:
            saved = await call(client, "plan_chain", {"plan": SHOUT, "save_as": SAVE_AS})
            found = await call(client, "discover_tools", {"query": "shout a text in capital letters", "top_k": 3})
            by_name = await call(client, "execute_chain", {"chain": "shout-text", "inputs": {"text": "hello there"}})
            bad = await call(client, "execute_chain", {"chain": "shout-text", "inputs": {"txt": "x"}})
            nested = await call(client, "execute_chain", {"plan": outer})
        async with serve_stdio(DEMO_CONFIG_PATH, "--state-dir", state) as client:
            pinned = f"shout-text@{saved['saved']['version']}"
            later = await call(client, "execute_chain", {"chain": pinned, "inputs": {"text": "still here"}})
    assert saved["valid"] is True and saved["saved"]["status"] == "created"
    assert found["tools"][0]["id"] == "chain/shout-text"
    assert found["tools"][0]["effect"] == "read_only"
    assert by_name["status"] == "succeeded"
    assert by_name["outputs"]["upper"] == {"text": "HELLO THERE"}
    assert by_name["outputs"]["stats"]["words"] == 2
    assert bad["status"] == "invalid" and bad["errors"][0]["kind"] == "invalid_inputs"
    assert nested["status"] == "succeeded", json.dumps(nested)
    assert nested["outputs"]["again"] == {"text": "saved-chains-work"}
    assert later["outputs"]["upper"] == {"text": "STILL HERE"}
