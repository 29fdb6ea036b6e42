import random
from typing import Any

from mcp import Client
from mcp_server_time.server import create_server as create_time_server

from mcp_conductor.client_pool.catalog import ServerName, ToolId, ToolInfo
from mcp_conductor.server.discovery.index import ToolIndex, stats_factor
from mcp_conductor.server.discovery.metrics import ToolStats
from mcp_conductor.server.discovery.text import deprecation, split_identifier, stem, tokenize


def tool(tool_id: str, description: str, **params: str) -> ToolInfo:
    server, _, name = tool_id.partition("/")
    properties: dict[str, Any] = {key: {"type": "string", "description": text} for key, text in params.items()}
    return ToolInfo(
        server=ServerName(server),
        name=name,
        description=description,
        input_schema={"type": "object", "properties": properties},
    )


CATALOG = [
    tool(
        "text/convert_case",
        "Convert text to upper, lower or title case.",
        text="Text to convert.",
        case="Case.",
    ),
    tool("text/word_stats", "Count the words, sentences and characters of a text.", text="Text to measure."),
    tool("text/summarize", "Summarize a text in a few sentences.", text="Text to summarize."),
    tool("files/read_file", "Read the complete contents of a file.", path="Path of the file."),
    tool("files/write_file", "Create or overwrite a file with new content.", path="Path.", content="Content."),
    tool("files/list_directory", "List the entries of a directory.", path="Directory path."),
    tool("weather/get_forecast", "Get the weather forecast for a city.", city="City name."),
    tool("web/fetch_url", "Download a web page and return it as markdown.", url="The URL."),
    tool("mathx/calculate", "Evaluate an arithmetic expression.", expression="The expression."),
]


def ids(hits: list[Any]) -> list[str]:
    return [hit.tool.id for hit in hits]


def stats(calls: int, successes: int, p50_ms: float | None = 50.0) -> ToolStats:
    return ToolStats(
        calls=calls,
        successes=successes,
        failures=calls - successes,
        timeouts=0,
        p50_ms=p50_ms,
        p95_ms=p50_ms,
    )


def test_split_identifier_handles_camel_snake_kebab_and_digits() -> None:
    assert split_identifier("getWeatherForecast") == ["get", "weather", "forecast"]
    assert split_identifier("read_text_file") == ["read", "text", "file"]
    assert split_identifier("list-dir") == ["list", "dir"]
    assert split_identifier("HTTPServer2") == ["http", "server", "2"]
    assert split_identifier("npmPackageReadme") == ["npm", "package", "readme"]


def test_tokenize_drops_stop_words_and_request_boilerplate() -> None:
    assert tokenize("Please tell me the weather in Paris") == ["weather", "paris"]
    assert tokenize("the of and to") == []


def test_tokenize_stems_plurals_and_verb_forms_to_the_same_term() -> None:
    assert tokenize("files file") == ["fil", "fil"]
    assert tokenize("creating created creates create") == ["creat"] * 4
    assert tokenize("queries query") == ["queri", "queri"]
    assert tokenize("news status") == ["news", "status"]


def test_tokenize_splits_identifiers_inside_prose() -> None:
    assert tokenize("Call getWeatherForecast or read_text_file.") == [
        "call",
        "get",
        "weather",
        "forecast",
        "read",
        "text",
        "fil",
    ]


def test_tokenize_drops_base64_blobs() -> None:
    blob = "".join(
        random.Random(0).choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(300)
    )
    assert tokenize(f"describe data:image/png;base64,{blob}== please") == [
        "describ",
        "data",
        "imag",
        "png",
        "bas",
        "64",
    ]


def test_stem_leaves_short_and_non_ascii_words_alone() -> None:
    assert stem("bus") == "bus"
    assert stem("café") == "café"
    assert stem("running") == "run"


def test_a_query_ranks_the_tool_whose_name_and_description_match_first() -> None:
    index = ToolIndex.build(CATALOG)

    assert ids(index.search("convert text to upper case", top_k=1)) == ["text/convert_case"]
    assert ids(index.search("how many words are in this essay?", top_k=1)) == ["text/word_stats"]


def test_verb_synonyms_reach_tools_named_with_another_verb() -> None:
    index = ToolIndex.build(CATALOG)

    assert ids(index.search("fetch tomorrow's weather forecast for Lyon", top_k=1)) == ["weather/get_forecast"]
    assert ids(index.search("show what is in the folder", top_k=1)) == ["files/list_directory"]


def test_a_file_path_in_the_query_points_at_file_tools_not_at_its_folder_names() -> None:
    index = ToolIndex.build(CATALOG)

    hits = index.search("Save a summary of the weather to /root/weather/notes.md", top_k=3)

    assert "files/write_file" in ids(hits)
    assert ids(hits)[0] != "weather/get_forecast"


def test_a_web_address_in_the_query_points_at_web_tools() -> None:
    whois = tool("net/whois_domain", "Look up the registration record of a domain name.", domain="Domain.")
    index = ToolIndex.build([*CATALOG, whois])

    assert set(ids(index.search("Is amaz0n.com really Amazon?", top_k=2))) == {
        "net/whois_domain",
        "web/fetch_url",
    }
    assert ids(index.search("What does https://example.org/post say?", top_k=1)) == ["web/fetch_url"]


def test_a_query_naming_a_server_prefers_that_servers_tools() -> None:
    same = "Search the items of the service by keyword."
    index = ToolIndex.build([tool("alpha/search", same), tool("beta/search", same), tool("gamma/search", same)])

    assert ids(index.search("search beta for lamps", top_k=1)) == ["beta/search"]


def test_the_server_filter_keeps_only_the_named_servers() -> None:
    index = ToolIndex.build(CATALOG)

    hits = index.search("read the text of a file and count its words", top_k=10, servers={"files"})

    assert ids(hits) == ["files/read_file", "files/write_file", "files/list_directory"][: len(hits)]
    assert {hit.tool.server for hit in hits} == {"files"}
    assert index.search("read a file", servers=set()) == []
    assert index.search("read a file", servers={"nope"}) == []


def test_top_k_caps_the_results_and_keeps_their_order() -> None:
    index = ToolIndex.build(CATALOG)
    query = "read the text of a file, count its words and summarize it"

    everything = index.search(query, top_k=100)

    assert len(everything) > 3
    assert ids(index.search(query, top_k=3)) == ids(everything)[:3]
    assert index.search(query, top_k=0) == []
    assert [hit.score for hit in everything] == sorted((hit.score for hit in everything), reverse=True)


def test_stats_break_a_tie_between_two_identical_tools() -> None:
    twins = [
        tool("a/lookup_word", "Look up a word in the dictionary."),
        tool("b/lookup_word", "Look up a word in the dictionary."),
    ]
    index = ToolIndex.build(twins)
    query = "look up the word serendipity"

    assert ids(index.search(query)) == ["a/lookup_word", "b/lookup_word"]  # no stats: by id
    flaky_a = {ToolId("a/lookup_word"): stats(20, 12), ToolId("b/lookup_word"): stats(20, 20)}
    assert ids(index.search(query, stats=flaky_a)) == ["b/lookup_word", "a/lookup_word"]
    slow_a = {ToolId("a/lookup_word"): stats(20, 20, 4000.0), ToolId("b/lookup_word"): stats(20, 20, 40.0)}
    assert ids(index.search(query, stats=slow_a)) == ["b/lookup_word", "a/lookup_word"]


def test_stats_do_not_bury_a_clearly_better_text_match() -> None:
    index = ToolIndex.build(CATALOG)
    terrible = {ToolId("text/convert_case"): stats(100, 0, 90_000.0)}
    perfect = {ToolId(t.id): stats(100, 100, 1.0) for t in CATALOG if t.id != "text/convert_case"}

    hits = index.search("convert text to upper case", stats={**terrible, **perfect})

    assert ids(hits)[0] == "text/convert_case"


def test_tools_without_calls_get_the_neutral_factor() -> None:
    neutral = stats_factor(None)

    assert stats_factor(stats(0, 0, None)) == neutral
    assert stats_factor(stats(50, 50, 1000.0)) > neutral > stats_factor(stats(50, 40, 1000.0))
    assert 0.97 <= stats_factor(stats(1000, 0, 1e7)) < stats_factor(stats(1000, 1000, 0.5)) <= 1.0


def test_results_are_deterministic_whatever_the_input_order() -> None:
    shuffled = list(CATALOG)
    random.Random(3).shuffle(shuffled)
    query = "read the text of a file, count its words and summarize it"

    first = ToolIndex.build(CATALOG).search(query, top_k=9)
    second = ToolIndex.build(shuffled).search(query, top_k=9)

    assert ids(first) == ids(second)
    assert [hit.score for hit in first] == [hit.score for hit in second]


def test_an_empty_or_stop_word_query_finds_nothing_and_the_listing_is_sorted_by_id() -> None:
    index = ToolIndex.build(CATALOG)

    assert index.search("") == []
    assert index.search("   ") == []
    assert index.search("please tell me what it is") == []
    assert [t.id for t in index.list_tools()] == sorted(t.id for t in CATALOG)
    assert [t.id for t in index.list_tools(servers={"text", "web"})] == [
        "text/convert_case",
        "text/summarize",
        "text/word_stats",
        "web/fetch_url",
    ]


def test_a_later_tool_with_the_same_id_replaces_the_earlier_one() -> None:
    old = tool("web/fetch_url", "Old description.")

    index = ToolIndex.build([old, *CATALOG])

    assert len(index) == len(CATALOG)
    assert ids(index.search("download the web page as markdown", top_k=1)) == ["web/fetch_url"]


def test_an_empty_index_finds_and_lists_nothing() -> None:
    index = ToolIndex.build([])

    assert len(index) == 0
    assert index.search("anything at all") == []
    assert index.list_tools() == []


def test_an_abbreviated_tool_name_matches_the_spelled_out_word_in_a_query():
    index = ToolIndex.build(
        [
            ToolInfo(server=ServerName("text"), name="word_stats", description="Count the words of a text."),
            ToolInfo(server=ServerName("math"), name="statistics", description="Mean and median of numbers."),
        ]
    )
    assert [hit.tool.id for hit in index.search("word statistics", top_k=2)] == ["text/word_stats", "math/statistics"]


# server-filesystem's read tools as it lists them today (read_file is kept for old clients, deprecated).
FILESYSTEM_READ_PARAMS = {
    "path": {"type": "string"},
    "tail": {"type": "number", "description": "If provided, returns only the last N lines of the file"},
    "head": {"type": "number", "description": "If provided, returns only the first N lines of the file"},
}
FILESYSTEM = [
    ToolInfo(
        server=ServerName("filesystem"),
        name="read_file",
        title="Read File (Deprecated)",
        description="Read the complete contents of a file as text. DEPRECATED: Use read_text_file instead.",
        input_schema={"type": "object", "properties": FILESYSTEM_READ_PARAMS},
    ),
    ToolInfo(
        server=ServerName("filesystem"),
        name="read_text_file",
        title="Read Text File",
        description="Read the complete contents of a file from the file system as text. Handles various text "
        "encodings and provides detailed error messages if the file cannot be read. Use this tool when you need "
        "to examine the contents of a single file. Use the 'head' parameter to read only the first N lines of a "
        "file, or the 'tail' parameter to read only the last N lines of a file. Operates on the file as text "
        "regardless of extension. Only works within allowed directories.",
        input_schema={"type": "object", "properties": FILESYSTEM_READ_PARAMS},
    ),
    ToolInfo(
        server=ServerName("filesystem"),
        name="read_media_file",
        title="Read Media File",
        description="Read an image or audio file. Returns the base64 encoded data and MIME type. Only works within "
        "allowed directories.",
        input_schema={"type": "object", "properties": {"path": {"type": "string"}}},
    ),
]


def test_a_deprecated_tool_ranks_below_the_tool_it_names_as_its_replacement() -> None:
    index = ToolIndex.build([t for t in CATALOG if t.server != "files"] + FILESYSTEM)
    ranked = ids(index.search("read a file", top_k=5))
    assert ranked.index("filesystem/read_text_file") < ranked.index("filesystem/read_file")
    assert ranked[0] == "filesystem/read_text_file"


def test_deprecation_is_read_from_markers_not_from_the_word_in_a_tool_s_purpose() -> None:
    assert deprecation("Read a file. DEPRECATED: Use read_text_file instead.") == (True, "read_text_file")
    assert deprecation("Read File (Deprecated)", "Read a file.") == (True, None)
    assert deprecation("This tool is deprecated in favor of `search_v2`.") == (True, "search_v2")
    assert deprecation("Check if packages are deprecated") == (False, None)


async def test_what_time_is_it_in_tokyo_ranks_get_current_time_first() -> None:
    async with Client(create_time_server("UTC")) as client:  # mcp-server-time's real tools
        listed = await client.list_tools()
    time_tools = [
        ToolInfo(server=ServerName("time"), name=t.name, description=t.description or "", input_schema=t.input_schema)
        for t in listed.tools
    ]
    index = ToolIndex.build(CATALOG + time_tools)
    assert ids(index.search("what time is it in Tokyo", top_k=2)) == ["time/get_current_time", "time/convert_time"]
    assert ids(index.search("convert 9:00 from New York time to Tokyo time", top_k=1)) == ["time/convert_time"]


def test_only_the_tool_s_own_failures_lower_its_success_rate() -> None:
    from mcp import MCPError

    from mcp_conductor.errors import CallTimeoutError, ConnectionLostError, ProtocolError, ToolExecutionError
    from mcp_conductor.server.discovery.metrics import MetricsRegistry, is_caller_error

    invalid = ProtocolError("bad", server="s")
    invalid.__cause__ = MCPError(-32602, "Invalid params")
    crashed = ProtocolError("bad", server="s")
    crashed.__cause__ = MCPError(-32603, "Internal error")
    assert is_caller_error(ToolExecutionError("path outside allowed directories", server="s"))
    assert is_caller_error(invalid)
    assert not any(
        is_caller_error(e)
        for e in (crashed, CallTimeoutError("t", server="s"), ConnectionLostError("c", server="s"), None)
    )

    registry = MetricsRegistry()
    tool = ToolId("s/t")
    registry.record(tool, ok=True, duration_ms=10)
    registry.record(tool, ok=False, duration_ms=1, error=ToolExecutionError("no such file", server="s"))
    registry.record(tool, ok=False, duration_ms=1, error=invalid)
    one = registry.stats()[tool]
    assert (one.calls, one.failures, one.caller_errors, one.success_rate, one.p50_ms) == (3, 2, 2, 1.0, one.p95_ms)
    assert stats_factor(one) == stats_factor(registry.stats()[tool]) > stats_factor(None)
    registry.record(tool, ok=False, duration_ms=5000, timed_out=True, error=CallTimeoutError("t", server="s"))
    assert registry.stats()[tool].success_rate == 0.5
