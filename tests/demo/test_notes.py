import json
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from mcp_conductor.demo.notes import build_server


async def test_put_then_get_returns_the_value_and_versions_count_writes():
    async with Client(build_server()) as c:
        first = await c.call_tool("put", {"key": "todo", "value": "buy milk"})
        second = await c.call_tool("put", {"key": "todo", "value": "buy oat milk"})
        got = await c.call_tool("get", {"key": "todo"})
    assert first.structured_content == {"key": "todo", "version": 1}
    assert second.structured_content == {"key": "todo", "version": 2}
    assert got.structured_content == {"key": "todo", "value": "buy oat milk", "found": True}


async def test_get_of_a_missing_key_is_not_an_error():
    async with Client(build_server()) as c:
        result = await c.call_tool("get", {"key": "nope"})
    assert not result.is_error
    assert result.structured_content == {"key": "nope", "value": None, "found": False}


async def test_list_keys_filters_by_prefix_and_sorts():
    async with Client(build_server()) as c:
        for key in ["work/b", "home/a", "work/a"]:
            await c.call_tool("put", {"key": key, "value": "x"})
        everything = await c.call_tool("list_keys", {})
        work = await c.call_tool("list_keys", {"prefix": "work/"})
    assert everything.structured_content == {"keys": ["home/a", "work/a", "work/b"]}
    assert work.structured_content == {"keys": ["work/a", "work/b"]}


async def test_delete_removes_a_note_once_and_a_rewrite_starts_at_version_one():
    async with Client(build_server()) as c:
        await c.call_tool("put", {"key": "k", "value": "v"})
        await c.call_tool("put", {"key": "k", "value": "w"})
        deleted = await c.call_tool("delete", {"key": "k"})
        again = await c.call_tool("delete", {"key": "k"})
        rewritten = await c.call_tool("put", {"key": "k", "value": "z"})
    assert deleted.structured_content == {"key": "k", "deleted": True}
    assert again.structured_content == {"key": "k", "deleted": False}
    assert rewritten.structured_content == {"key": "k", "version": 1}


async def test_an_empty_key_is_rejected():
    async with Client(build_server()) as c:
        result = await c.call_tool("put", {"key": "", "value": "v"})
    assert result.is_error


async def test_annotations_say_put_and_delete_change_state():
    async with Client(build_server()) as c:
        tools = {t.name: t.annotations for t in (await c.list_tools()).tools}
    hints = {
        name: (a.read_only_hint, a.destructive_hint, a.idempotent_hint) for name, a in tools.items() if a is not None
    }
    assert hints == {
        "put": (False, True, False),
        "get": (True, False, True),
        "list_keys": (True, False, True),
        "delete": (False, True, True),
    }


async def test_notes_file_keeps_notes_across_server_instances(tmp_path: Path):
    notes_file = tmp_path / "sub" / "notes.json"
    async with Client(build_server(notes_file)) as c:
        await c.call_tool("put", {"key": "a", "value": "kept"})
        await c.call_tool("put", {"key": "b", "value": "gone"})
        await c.call_tool("delete", {"key": "b"})
    async with Client(build_server(notes_file)) as c:
        got = await c.call_tool("get", {"key": "a"})
        keys = await c.call_tool("list_keys", {})
        again = await c.call_tool("put", {"key": "a", "value": "kept twice"})
    assert got.structured_content == {"key": "a", "value": "kept", "found": True}
    assert keys.structured_content == {"keys": ["a"]}
    assert again.structured_content == {"key": "a", "version": 2}
    assert json.loads(notes_file.read_text()) == {"notes": {"a": {"value": "kept twice", "version": 2}}}
    assert [p.name for p in notes_file.parent.iterdir()] == ["notes.json"]  # no temp files left behind


def test_a_malformed_notes_file_is_refused_at_start(tmp_path: Path):
    notes_file = tmp_path / "notes.json"
    notes_file.write_text('{"notes": {"a": "not an object"}}')
    with pytest.raises(ValueError, match="notes"):
        build_server(notes_file)


async def test_notes_server_over_stdio_survives_a_restart_with_notes_file(tmp_path: Path):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_conductor.demo.notes"],
        env={"NOTES_FILE": str(tmp_path / "notes.json")},
    )
    with anyio.fail_after(30):
        async with Client(params) as c:
            tools = (await c.list_tools()).tools
            await c.call_tool("put", {"key": "meeting", "value": "Thursday 10:00"})
        async with Client(params) as c:
            got = await c.call_tool("get", {"key": "meeting"})
    assert {t.name for t in tools} == {"put", "get", "list_keys", "delete"}
    assert got.structured_content == {"key": "meeting", "value": "Thursday 10:00", "found": True}
