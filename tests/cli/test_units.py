"""Pure parts of the CLI: doctor's hint rules, secret redaction, the Gantt chart, inputs and previews."""

from __future__ import annotations

import pytest

from mcp_conductor.cli.common import UsageError
from mcp_conductor.cli.execution import parse_inputs, plan_servers, preview, runs_command, with_inputs
from mcp_conductor.cli.gantt import Span, gantt, spans
from mcp_conductor.cli.hints import ServerFacts, diagnose
from mcp_conductor.client_pool.config import build_config
from mcp_conductor.client_pool.secrets import redact, secret_values
from mcp_conductor.server.store.records import RunRecord, RunStatus, StepRun, StepStatus


def failed(error: str | None = None, **facts: object) -> ServerFacts:
    return ServerFacts(**({"name": "s", "transport": "stdio", "state": "failed", "error": error} | facts))  # type: ignore[arg-type]


# -- doctor's hint rules -----------------------------------------------------------------------------------


def test_a_ready_server_has_nothing_to_fix():
    assert diagnose(ServerFacts("s", "stdio", "ready")).failed is False
    assert diagnose(ServerFacts("s", "stdio", "ready")).hint is None


def test_a_disabled_server_is_not_a_failure():
    found = diagnose(ServerFacts("s", "stdio", "disabled"))
    assert (found.failed, found.cause) == (False, "disabled in the config")


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("npx", "Node.js"),
        ("node", "Node.js"),
        ("uvx", "install uv"),
        ("python3", "${CONDUCTOR_PYTHON}"),
        ("python3.12", "${CONDUCTOR_PYTHON}"),
        ("docker", "install docker"),
        ("frobnicate", "install frobnicate, or check that it is on PATH"),
    ],
)
def test_a_missing_command_gets_an_install_hint_specific_to_the_launcher(command: str, words: str):
    found = diagnose(failed(f"command not found: {command}", command=command))
    assert found.failed
    assert found.cause == f"command not found: {command}"
    assert found.hint is not None and words in found.hint
    assert "PATH" in found.hint


def test_a_missing_absolute_command_path_is_reported_as_a_wrong_path():
    found = diagnose(failed("command not found: /opt/bin/srv", command="/opt/bin/srv"))
    assert found.hint is not None and "does not exist" in found.hint


@pytest.mark.parametrize(
    "stderr",
    [
        "npm WARN EBADENGINE Unsupported engine { package: 'x', required: { node: '>=18' } }",
        "error: this package requires Node.js 18 or newer",
        "/home/u/.npm/_npx/1/node_modules/srv/index.js:3\nSyntaxError: Unexpected token '?'",
        "ReferenceError: fetch is not defined",
    ],
)
def test_an_old_node_is_recognized_from_stderr(stderr: str):
    found = diagnose(failed("MCPError: Connection closed", stderr_tail=stderr, command="npx"))
    assert found.cause is not None and found.cause.startswith("Node.js is too old")
    assert found.hint is not None and "upgrade Node.js" in found.hint


def test_a_python_syntax_error_is_not_blamed_on_node():
    found = diagnose(failed("MCPError: Connection closed", stderr_tail="SyntaxError: invalid syntax", command="python"))
    assert found.cause is not None and "Node" not in found.cause


@pytest.mark.parametrize(
    ("status", "cause", "hint_words"),
    [
        (401, "HTTP 401", '"headers"'),
        (403, "HTTP 403", "scopes"),
        (404, "HTTP 404", "/mcp"),
        (503, "HTTP 503", "try again later"),
    ],
)
def test_http_errors_get_a_hint_per_status(status: int, cause: str, hint_words: str):
    facts = failed("MCPError: Server returned an error response", transport="streamable-http", http_status=status)
    found = diagnose(facts)
    assert found.cause is not None and found.cause.startswith(cause)
    assert found.hint is not None and hint_words in found.hint


def test_an_http_status_in_the_error_text_counts_without_a_probe():
    error = "HTTPStatusError: Client error '403 Forbidden' for url 'https://example.test/sse'"
    found = diagnose(failed(error, transport="sse"))
    assert found.cause is not None and found.cause.startswith("HTTP 403")


def test_an_unreachable_host_is_told_apart_from_an_http_error():
    found = diagnose(failed("ConnectError: All connection attempts failed", transport="streamable-http"))
    assert found.cause == "cannot reach the server"


def test_a_connect_timeout_explains_the_usual_reasons_and_the_setting():
    found = diagnose(failed("TimeoutError: no MCP handshake and tool list within 7s", connect_timeout_s=7.0))
    assert found.cause == "no MCP handshake within 7s"
    assert found.hint is not None
    assert found.hint.startswith(
        "server did not complete the MCP handshake within 7s; it may print to stdout, wait for input, or need a "
        "longer connect_timeout_s"
    )
    assert '"s": {"connect_timeout_s"' in found.hint


def test_a_server_still_connecting_after_the_wait_counts_as_a_timeout():
    found = diagnose(ServerFacts("s", "stdio", "connecting", command="uvx"))
    assert found.failed and found.hint is not None and "uvx" in found.hint


def test_stdout_noise_before_the_handshake_is_the_cause_even_when_the_connection_closed():
    found = diagnose(failed("MCPError: Connection closed", stdout_garbage=3))
    assert found.cause == "wrote 3 lines to stdout that are not MCP before the handshake"
    assert found.hint is not None and "stderr" in found.hint


def test_stdout_noise_from_a_server_that_works_is_a_warning_not_a_failure():
    found = diagnose(ServerFacts("s", "stdio", "ready", stdout_garbage=1))
    assert not found.failed
    assert found.cause == "wrote 1 line to stdout that is not MCP"


def test_a_missing_environment_variable_named_on_stderr_gets_an_env_hint():
    found = diagnose(
        failed("MCPError: Connection closed", stderr_tail="Error: GITHUB_TOKEN environment variable is required")
    )
    assert found.cause is not None and "environment variable" in found.cause
    assert found.hint is not None and '"GITHUB_TOKEN": "${GITHUB_TOKEN}"' in found.hint


def test_a_server_that_exits_at_start_shows_its_last_stderr_line():
    found = diagnose(failed("MCPError: Connection closed (stderr: boom)", stderr_tail="boom\nboom", command="python"))
    assert found.cause == "exited before the MCP handshake: boom"
    assert found.hint is not None and "by hand" in found.hint


def test_an_unknown_failure_still_gets_a_way_forward():
    found = diagnose(failed("RuntimeError: something odd"))
    assert found.cause == "RuntimeError: something odd"
    assert found.hint is not None and "--debug doctor" in found.hint


# -- secrets ------------------------------------------------------------------------------------------------


def test_env_header_and_url_secrets_are_redacted_and_short_flags_are_not():
    config = build_config(
        {
            "mcpServers": {
                "a": {"command": "x", "env": {"API_KEY": "sk-123456", "DEBUG": "1"}},
                "b": {
                    "url": "https://u:pa55word@example.test/mcp?token=qwerty123",
                    "headers": {"Authorization": "Bearer tok-abcdef"},
                },
            }
        }
    )
    secrets = secret_values(config)
    assert {"sk-123456", "pa55word", "qwerty123", "Bearer tok-abcdef", "tok-abcdef"} <= secrets
    assert "1" not in secrets and "Bearer" not in secrets
    text = "key sk-123456, header Bearer tok-abcdef, bare tok-abcdef, url ?token=qwerty123, 1 server"
    assert redact(text, secrets) == "key ***, header ***, bare ***, url ?token=***, 1 server"


# -- the Gantt chart ----------------------------------------------------------------------------------------


def test_gantt_places_each_bar_where_its_step_ran():
    rows = [Span("read", 0, 100, "done"), Span("stats", 100, 400, "done"), Span("save", None, None, "skipped")]
    lines = gantt(rows, 400, width=8)
    assert lines == [
        "       0 ms 400 ms",
        "read  |##      |   0-100 ms  done",
        "stats |  ######| 100-400 ms  done",
        "save  |        |          -  skipped",
    ]


def test_gantt_gives_an_instant_step_one_cell_and_marks_failures():
    lines = gantt([Span("a", 0, 0, "done"), Span("b", 999, 1000, "failed")], 1000, width=10)
    assert lines[1] == "a |#         |      0-0 ms  done"
    assert lines[2] == "b |         x| 999-1000 ms  failed"


def test_spans_are_offsets_from_the_run_start():
    run = RunRecord(run_id="r", plan_id="p", status=RunStatus.FAILED, started_at="2026-01-01T00:00:00.000+00:00",
                    duration_ms=500.0)  # fmt: skip
    steps = [
        StepRun(run_id="r", step_id="a", tool="t/a", status=StepStatus.SUCCEEDED, attempts=1,
                   started_at="2026-01-01T00:00:00.010+00:00", finished_at="2026-01-01T00:00:00.110+00:00"),
        StepRun(run_id="r", step_id="b", tool="t/b", status=StepStatus.SKIPPED,
                   finished_at="2026-01-01T00:00:00.120+00:00"),
    ]  # fmt: skip
    rows, total = spans(run, steps)
    assert rows == [Span("a", 10.0, 110.0, "done"), Span("b", None, None, "skipped")]
    assert total == 500.0


# -- inputs, plans, previews --------------------------------------------------------------------------------


def test_input_values_are_json_when_they_parse_and_strings_otherwise():
    assert parse_inputs(["n=5", "path=notes/today.md", 'tags=["a"]', "empty=", "eq=a=b"]) == {
        "n": 5, "path": "notes/today.md", "tags": ["a"], "empty": "", "eq": "a=b",
    }  # fmt: skip


@pytest.mark.parametrize("pair", ["nonsense", "=5"])
def test_an_input_without_a_name_is_a_usage_error(pair: str):
    with pytest.raises(UsageError):
        parse_inputs([pair])


def test_inputs_merge_over_the_plan_s_own():
    assert with_inputs({"inputs": {"a": 1, "b": 2}, "steps": []}, {"b": 3}) == {"inputs": {"a": 1, "b": 3}, "steps": []}


def test_the_servers_of_a_plan_are_known_only_when_every_tool_is_qualified():
    assert plan_servers({"steps": [{"tool": "text/a"}, {"tool": "math/b"}]}) == {"text", "math"}
    assert plan_servers({"steps": [{"tool": "text/a"}, {"tool": "bare"}]}) is None
    assert plan_servers([1, 2]) is None


def test_previews_cut_long_values_and_budget_markers():
    assert preview({"a": 1}) == ('{"a": 1}', False)
    text, cut = preview("x" * 1000, limit=20)
    assert (len(text), cut) == (20, True)
    words = {"text": "the quick brown fox jumps over the lazy dog"}
    assert preview(words, limit=28) == ('{"text": "the quick brown…', True)  # cut at a word, with an ellipsis
    marker = {"truncated": True, "preview": '{"big": "xx', "full_value": "conductor://runs/r/steps/s"}
    assert preview(marker) == ('{"big": "xx', True)


def test_suggested_commands_carry_the_state_dir():
    assert runs_command("/tmp/my state", "show", "r1") == "mcp-conductor runs show r1 --state-dir '/tmp/my state'"
    assert runs_command(None, "resume", "r1") == "mcp-conductor runs resume r1"
