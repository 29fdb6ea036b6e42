import importlib
import json

from mcp import Client
from mcp.server.mcpserver import MCPServer

from mcp_conductor.demo import DEMO_CONFIG_PATH, DEMO_SERVERS


def test_demo_config_starts_every_demo_module_with_the_conductor_python():
    config = json.loads(DEMO_CONFIG_PATH.read_text())
    servers = config["mcpServers"]
    assert list(servers) == ["text", "math", "notes", "files", "latency"]
    assert all(entry["command"] == "${CONDUCTOR_PYTHON}" for entry in servers.values())
    assert [entry["args"] for entry in servers.values()] == [["-m", module] for module in DEMO_SERVERS]


def test_each_config_key_is_the_name_of_the_server_its_module_serves():
    servers = json.loads(DEMO_CONFIG_PATH.read_text())["mcpServers"]
    for key, entry in servers.items():
        server = importlib.import_module(entry["args"][1]).server
        assert isinstance(server, MCPServer)
        assert server.name == key


async def test_every_demo_tool_is_described_for_an_llm_with_schemas_and_annotations():
    for module in DEMO_SERVERS:
        async with Client(importlib.import_module(module).server) as c:
            tools = (await c.list_tools()).tools
        for tool in tools:
            where = f"{module}:{tool.name}"
            assert tool.description and len(tool.description) > 30, where
            assert tool.output_schema is not None, where
            assert tool.annotations is not None, where
            hints = (tool.annotations.read_only_hint, tool.annotations.idempotent_hint)
            assert None not in hints, where
            assert tool.annotations.destructive_hint is not None, where
            for name, prop in tool.input_schema.get("properties", {}).items():
                assert prop.get("description"), f"{where}({name})"
