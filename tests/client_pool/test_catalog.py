from types import MappingProxyType

import anyio
import pytest
from mcp.server.mcpserver import MCPServer

from mcp_conductor.client_pool.catalog import Catalog, CatalogSnapshot, ServerName, ToolInfo
from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.client_pool.config_models import ServerSettings, ToolFilter
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.errors import ToolHiddenError, UnknownToolError


def filesystem_server() -> MCPServer:
    server = MCPServer("filesystem")

    @server.tool()
    async def read_file(path: str) -> str:
        return path

    @server.tool()
    async def move_file(source: str, destination: str) -> str:
        return destination

    return server


async def live_snapshot_with(tools: ToolFilter, **servers: MCPServer) -> CatalogSnapshot:
    """The catalog of a pool over ``servers`` (in memory), with ``tools`` as the filesystem server's filter."""
    base = in_process_config({"filesystem": filesystem_server(), **servers})
    filtered = base.servers[ServerName("filesystem")].model_copy(update={"settings": ServerSettings(tools=tools)})
    config = base.model_copy(update={"servers": {**base.servers, ServerName("filesystem"): filtered}})
    async with ClientPool(config) as pool:
        with anyio.fail_after(5):
            await pool.wait_settled()
        return pool.snapshot()


@pytest.mark.parametrize("ref", ["filesystem/move_file", "move_file"])
async def test_a_tool_denied_by_the_config_is_reported_as_hidden_naming_the_deny_list(ref: str):
    snapshot = await live_snapshot_with(ToolFilter(deny=["move_file"]))
    assert sorted(snapshot.tools) == ["filesystem/read_file"]
    with pytest.raises(ToolHiddenError) as exc:
        snapshot.resolve(ref)
    assert isinstance(exc.value, UnknownToolError)
    assert exc.value.describe() == {
        "kind": "tool_hidden",
        "message": "filesystem/move_file is hidden by the config: "
        'conductor.servers.filesystem.tools.deny lists "move_file"',
        "retryable": False,
        "hint": "change that list in the config to use it, or pick another tool (discover_tools lists the shown ones)",
        "tool": "filesystem/move_file",
        "suggestions": [],
        "reason": 'conductor.servers.filesystem.tools.deny lists "move_file"',
    }


async def test_a_tool_left_out_of_the_allow_list_is_reported_as_hidden_naming_the_allow_list():
    snapshot = await live_snapshot_with(ToolFilter(allow=["read_file"]))
    with pytest.raises(ToolHiddenError) as exc:
        snapshot.resolve("filesystem/move_file")
    assert exc.value.message == (
        "filesystem/move_file is hidden by the config: "
        'conductor.servers.filesystem.tools.allow does not list "move_file"'
    )


async def test_a_bare_name_hidden_on_one_server_resolves_to_the_server_that_shows_it():
    other = MCPServer("backup")

    @other.tool()
    async def move_file(source: str, destination: str) -> str:
        return destination

    snapshot = await live_snapshot_with(ToolFilter(deny=["move_file"]), backup=other)
    assert snapshot.resolve("move_file").id == "backup/move_file"
    with pytest.raises(ToolHiddenError):
        snapshot.resolve("filesystem/move_file")


async def test_a_tool_no_server_offers_is_still_unknown_with_suggestions():
    snapshot = await live_snapshot_with(ToolFilter(deny=["move_file"]))
    with pytest.raises(UnknownToolError) as exc:
        snapshot.resolve("filesystem/read_fil")
    assert type(exc.value) is UnknownToolError
    assert exc.value.suggestions == ["filesystem/read_file"]


def test_a_server_that_stops_hiding_a_tool_changes_the_catalog_version():
    catalog = Catalog()
    server, shown = ServerName("fs"), [ToolInfo(server=ServerName("fs"), name="read_file")]
    catalog.set_server_tools(server, shown, hidden={"move_file": "denied"})
    before = catalog.version
    catalog.set_server_tools(server, shown, hidden={"move_file": "denied"})
    assert catalog.version == before
    catalog.set_server_tools(server, shown)
    assert catalog.version == before + 1
    assert dict(catalog.snapshot().hidden) == {}


def test_unknown_tool_suggestions_rank_shared_words_first_and_leave_unrelated_tools_out():
    tools = [ToolInfo(ServerName("time"), n) for n in ("convert_time", "get_current_time")]
    tools += [ToolInfo(ServerName("files"), n) for n in ("read_file", "list_directory")]
    snapshot = CatalogSnapshot(1, MappingProxyType({t.id: t for t in tools}))

    with pytest.raises(UnknownToolError) as caught:
        snapshot.resolve("time/get_time")

    assert caught.value.suggestions == ["time/get_current_time", "time/convert_time"]
    assert snapshot.suggest("files/readfile") == ["files/read_file"]
    assert snapshot.suggest("getCurrentTime") == ["time/get_current_time", "time/convert_time"]
    assert snapshot.suggest("send_email") == []
