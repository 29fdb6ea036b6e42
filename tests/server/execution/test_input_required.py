"""A downstream tool that asks for input from a person (an elicitation) fails its step with ``input_required``
and the tool's own question, instead of hanging or failing obscurely."""

from pathlib import Path
from typing import Annotated

import anyio
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.resolve import Elicit, Resolve
from pydantic import BaseModel

from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.server.app import build_server


class Confirm(BaseModel):
    ok: bool


def asking_server() -> MCPServer:
    server = MCPServer("asking")

    async def ask(path: str) -> Elicit[Confirm]:
        return Elicit(f"Really delete {path}?", Confirm)

    @server.tool()
    async def delete(path: str, confirm: Annotated[Confirm, Resolve(ask)]) -> str:
        return "deleted" if confirm.ok else "kept"

    return server


async def test_a_tool_that_asks_a_person_fails_its_step_with_input_required_and_its_question(tmp_path: Path):
    server = build_server(in_process_config({"asking": asking_server()}), state_dir=tmp_path / "state")
    plan = {"steps": [{"id": "rm", "tool": "asking/delete", "arguments": {"path": "notes.md"}}]}
    async with Client(server) as client:
        with anyio.fail_after(10):
            result = await client.call_tool("execute_chain", {"plan": plan})
    run = result.structured_content
    assert result.is_error and run is not None
    assert run["status"] == "failed"
    (problem,) = run["problems"]
    assert problem["id"] == "rm"
    assert problem["error"]["kind"] == "input_required"
    assert "Really delete notes.md?" in problem["error"]["message"]
