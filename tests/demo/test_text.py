import sys

import anyio
import pytest
from mcp import Client, StdioServerParameters

from mcp_conductor.demo.text import server

TEXT = "The cat sat on the mat. The cat ran away! Did the dog follow the cat?"


async def test_word_stats_counts_words_distinct_words_sentences_and_characters():
    async with Client(server) as c:
        result = await c.call_tool("word_stats", {"text": TEXT})
    assert result.structured_content == {"words": 16, "unique_words": 10, "sentences": 3, "characters": 69}


async def test_word_stats_of_empty_text_is_all_zero():
    async with Client(server) as c:
        result = await c.call_tool("word_stats", {"text": ""})
    assert result.structured_content == {"words": 0, "unique_words": 0, "sentences": 0, "characters": 0}


async def test_keywords_drop_stop_words_and_break_ties_alphabetically():
    async with Client(server) as c:
        result = await c.call_tool("keywords", {"text": TEXT, "top": 4})
    assert result.structured_content == {"keywords": ["cat", "away", "dog", "follow"]}


async def test_keywords_default_to_five_and_ignore_case():
    text = "Rust rust RUST python Python go java kotlin scala"
    async with Client(server) as c:
        result = await c.call_tool("keywords", {"text": text})
    assert result.structured_content == {"keywords": ["rust", "python", "go", "java", "kotlin"]}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("upper", "PARSE HTTPSERVER CONFIG, DON'T PANIC"),
        ("lower", "parse httpserver config, don't panic"),
        ("title", "Parse Httpserver Config, Don't Panic"),
        ("snake", "parse_http_server_config_dont_panic"),
        ("kebab", "parse-http-server-config-dont-panic"),
        ("camel", "parseHttpServerConfigDontPanic"),
    ],
)
async def test_convert_case_supports_every_mode(mode: str, expected: str):
    async with Client(server) as c:
        result = await c.call_tool("convert_case", {"text": "parse HTTPServer config, don't panic", "mode": mode})
    assert result.structured_content == {"text": expected}


async def test_convert_case_rejects_an_unknown_mode():
    async with Client(server) as c:
        result = await c.call_tool("convert_case", {"text": "x", "mode": "shout"})
    assert result.is_error
    assert "upper" in result.content[0].text


async def test_summarize_keeps_the_first_sentences_with_whitespace_collapsed():
    text = "First point.  It wraps\nover lines! Second point? Third point."
    async with Client(server) as c:
        two = await c.call_tool("summarize", {"text": text})
        one = await c.call_tool("summarize", {"text": text, "sentences": 1})
    assert two.structured_content == {"summary": "First point. It wraps over lines!"}
    assert one.structured_content == {"summary": "First point."}


async def test_summarize_returns_a_short_text_whole():
    async with Client(server) as c:
        result = await c.call_tool("summarize", {"text": "no full stop here", "sentences": 3})
    assert result.structured_content == {"summary": "no full stop here"}


async def test_every_text_tool_is_read_only_and_has_an_output_schema():
    async with Client(server) as c:
        tools = (await c.list_tools()).tools
    assert [t.name for t in tools] == ["word_stats", "keywords", "convert_case", "summarize"]
    for tool in tools:
        assert tool.output_schema is not None
        assert tool.annotations is not None
        assert (tool.annotations.read_only_hint, tool.annotations.idempotent_hint) == (True, True)


async def test_text_server_runs_over_stdio():
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_conductor.demo.text"])
    with anyio.fail_after(30):
        async with Client(params) as c:
            tools = (await c.list_tools()).tools
            result = await c.call_tool("convert_case", {"text": "hello world", "mode": "kebab"})
            info = c.server_info
    assert info is not None
    assert info.name == "text"
    assert {t.name for t in tools} == {"word_stats", "keywords", "convert_case", "summarize"}
    assert result.structured_content == {"text": "hello-world"}


async def test_summarize_skips_markdown_headings_and_ends_sentences_at_paragraphs():
    text = "# Weekly notes\n\nShip on Friday\n\nThe release\nis ready. Docs are late."
    async with Client(server) as c:
        result = await c.call_tool("summarize", {"text": text})
    assert result.structured_content == {"summary": "Ship on Friday The release is ready."}
