import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from mcp_conductor.demo.files import BUNDLED_ROOT, build_server, server


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A files root with a nested text file, a binary file, and a secret outside the root."""
    (tmp_path / "root" / "docs").mkdir(parents=True)
    (tmp_path / "root" / "docs" / "a.md").write_text("Alpha line\nsecond Alpha\n")
    (tmp_path / "root" / "b.md").write_text("beta\n")
    (tmp_path / "root" / "blob.bin").write_bytes(b"\xff\xfe\x00alpha")
    (tmp_path / "secret.txt").write_text("alpha secret\n")
    return tmp_path / "root"


async def test_bundled_data_has_three_markdown_files():
    async with Client(server) as c:
        result = await c.call_tool("list_files", {})
    assert result.structured_content == {
        "files": ["guides/faq.md", "guides/setup.md", "notes/today.md"],
        "truncated": False,
    }


async def test_read_text_returns_the_content_and_size_in_bytes():
    expected = (BUNDLED_ROOT / "notes" / "today.md").read_bytes()
    async with Client(server) as c:
        result = await c.call_tool("read_text", {"path": "notes/today.md"})
    assert result.structured_content == {
        "path": "notes/today.md",
        "text": expected.decode(),
        "bytes": len(expected),
    }


async def test_search_text_finds_lines_case_insensitively_in_markdown_files():
    async with Client(server) as c:
        result = await c.call_tool("search_text", {"query": "DEPLOY"})
    assert result.structured_content is not None
    assert [(m["path"], m["line"]) for m in result.structured_content["matches"]] == [
        ("guides/faq.md", 13),
        ("guides/faq.md", 15),
        ("guides/setup.md", 9),
    ]
    assert result.structured_content["matches"][0]["text"] == "## Who can deploy?"


async def test_search_text_stops_at_max_results_and_says_so(root: Path):
    async with Client(build_server(root)) as c:
        result = await c.call_tool("search_text", {"query": "alpha", "pattern": "**/*", "max_results": 1})
    assert result.structured_content == {
        "matches": [{"path": "docs/a.md", "line": 1, "text": "Alpha line"}],
        "truncated": True,
    }


async def test_search_text_skips_binary_files(root: Path):
    async with Client(build_server(root)) as c:
        result = await c.call_tool("search_text", {"query": "alpha", "pattern": "**/*"})
    assert result.structured_content is not None
    assert {m["path"] for m in result.structured_content["matches"]} == {"docs/a.md"}


async def test_list_files_matches_a_glob_pattern(root: Path):
    async with Client(build_server(root)) as c:
        top = await c.call_tool("list_files", {"pattern": "*.md"})
        everything = await c.call_tool("list_files", {"pattern": "**/*"})
    assert top.structured_content == {"files": ["b.md"], "truncated": False}
    assert everything.structured_content == {"files": ["b.md", "blob.bin", "docs/a.md"], "truncated": False}


@pytest.mark.parametrize("path", ["../secret.txt", "docs/../../secret.txt", "/etc/passwd", "~/.bashrc"])
async def test_read_text_refuses_paths_outside_the_root(root: Path, path: str):
    async with Client(build_server(root)) as c:
        result = await c.call_tool("read_text", {"path": path})
    assert result.is_error
    assert "root" in result.content[0].text


async def test_read_text_allows_dot_dot_that_stays_inside_the_root(root: Path):
    async with Client(build_server(root)) as c:
        result = await c.call_tool("read_text", {"path": "docs/../b.md"})
    assert result.structured_content == {"path": "b.md", "text": "beta\n", "bytes": 5}


async def test_symlinks_escaping_the_root_are_neither_read_nor_listed(root: Path):
    (root / "link.txt").symlink_to(root.parent / "secret.txt")
    (root / "outside").symlink_to(root.parent, target_is_directory=True)
    async with Client(build_server(root)) as c:
        read = await c.call_tool("read_text", {"path": "link.txt"})
        through_dir = await c.call_tool("read_text", {"path": "outside/secret.txt"})
        listed = await c.call_tool("list_files", {"pattern": "**/*.txt"})
        found = await c.call_tool("search_text", {"query": "secret", "pattern": "**/*"})
    assert read.is_error
    assert through_dir.is_error
    assert listed.structured_content == {"files": [], "truncated": False}
    assert found.structured_content == {"matches": [], "truncated": False}


@pytest.mark.parametrize("pattern", ["../*", "/etc/*", "**foo"])
async def test_list_files_refuses_patterns_that_leave_the_root_or_are_invalid(root: Path, pattern: str):
    async with Client(build_server(root)) as c:
        result = await c.call_tool("list_files", {"pattern": pattern})
    assert result.is_error


async def test_read_text_explains_a_missing_file_and_a_binary_file(root: Path):
    async with Client(build_server(root)) as c:
        missing = await c.call_tool("read_text", {"path": "nope.md"})
        directory = await c.call_tool("read_text", {"path": "docs"})
        binary = await c.call_tool("read_text", {"path": "blob.bin"})
    assert missing.content[0].text == (
        "Error executing tool read_text: no file 'nope.md' under the root; use list_files to see which files exist"
    )
    assert directory.is_error
    assert binary.content[0].text == "Error executing tool read_text: 'blob.bin' is not UTF-8 text"


def test_a_root_that_is_not_a_directory_is_refused(tmp_path: Path):
    with pytest.raises(NotADirectoryError):
        build_server(tmp_path / "missing")


async def test_every_files_tool_is_read_only():
    async with Client(server) as c:
        tools = (await c.list_tools()).tools
    assert all(t.annotations is not None and t.annotations.read_only_hint for t in tools)


async def test_files_server_runs_over_stdio_with_files_root(root: Path):
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_conductor.demo.files"], env={"FILES_ROOT": str(root)}
    )
    with anyio.fail_after(30):
        async with Client(params) as c:
            tools = (await c.list_tools()).tools
            result = await c.call_tool("read_text", {"path": "docs/a.md"})
    assert {t.name for t in tools} == {"read_text", "list_files", "search_text"}
    assert result.structured_content == {
        "path": "docs/a.md",
        "text": "Alpha line\nsecond Alpha\n",
        "bytes": 24,
    }
