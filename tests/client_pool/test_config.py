import json
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mcp_conductor.client_pool.config import build_config, load_config, parse_config
from mcp_conductor.client_pool.config_models import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_SERVER_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    ConductorConfig,
    RemoteServer,
    StdioServer,
)
from mcp_conductor.errors import ConfigError

SECRET_ENV = "s3cr3t-env-value-4711"
SECRET_HEADER = "Bearer s3cr3t-header-token-0815"


def parse(raw: dict[str, object], **environ: str) -> ConductorConfig:
    return build_config(raw, environ=environ)


def config_error(raw: object, **environ: str) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        build_config(raw, environ=environ)
    return exc.value


def servers(entries: dict[str, object], **conductor: object) -> dict[str, object]:
    raw: dict[str, object] = {"mcpServers": entries}
    if conductor:
        raw["conductor"] = conductor
    return raw


# -- valid Claude Desktop shapes -------------------------------------------------------------------------------


def test_npx_entry_becomes_a_stdio_server_with_its_args_in_order():
    config = parse(
        servers({"filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]}})
    )
    server = config.servers["filesystem"]
    assert isinstance(server, StdioServer)
    assert (server.command, server.args, dict(server.env), server.cwd) == (
        "npx",
        ("-y", "@modelcontextprotocol/server-filesystem", "/tmp"),
        {},
        None,
    )
    assert server.transport == "stdio"


def test_uvx_entry_keeps_env_and_cwd():
    config = parse(
        servers(
            {
                "time": {
                    "command": "uvx",
                    "args": ["mcp-server-time", "--local-timezone=Europe/Berlin"],
                    "env": {"UV_INDEX_URL": "https://pypi.org/simple"},
                    "cwd": "/srv",
                }
            }
        )
    )
    server = config.servers["time"]
    assert isinstance(server, StdioServer)
    assert server.command == "uvx"
    assert server.args == ("mcp-server-time", "--local-timezone=Europe/Berlin")
    assert dict(server.env) == {"UV_INDEX_URL": "https://pypi.org/simple"}
    assert server.cwd == "/srv"


def test_python_entry_with_conductor_python_variable_runs_the_current_interpreter():
    config = build_config(
        servers({"text": {"command": "${CONDUCTOR_PYTHON}", "args": ["-m", "mcp_conductor.demo.text"]}}),
        environ={},
    )
    server = config.servers["text"]
    assert isinstance(server, StdioServer)
    assert server.command == sys.executable
    assert server.args == ("-m", "mcp_conductor.demo.text")


@pytest.mark.parametrize(
    ("kind", "transport"),
    [("http", "streamable-http"), ("streamable-http", "streamable-http"), ("sse", "sse"), (None, "streamable-http")],
)
def test_url_entries_become_remote_servers_of_the_matching_transport(kind: str | None, transport: str):
    entry: dict[str, object] = {"url": "https://mcp.example.test/mcp", "headers": {"X-Team": "blue"}}
    if kind is not None:
        entry["type"] = kind
    server = parse(servers({"remote": entry})).servers["remote"]
    assert isinstance(server, RemoteServer)
    assert server.transport == transport
    assert server.url == "https://mcp.example.test/mcp"
    assert dict(server.headers) == {"X-Team": "blue"}


def test_a_real_claude_desktop_file_loads_and_other_top_level_keys_are_ignored(tmp_path: Path):
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(
        json.dumps(
            {
                "globalShortcut": "Ctrl+Space",
                "theme": "dark",
                "mcpServers": {
                    "filesystem": {
                        "command": "npx",
                        "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
                    },
                    "github": {
                        "command": "npx",
                        "args": ["-y", "@modelcontextprotocol/server-github"],
                        "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_example"},
                        "autoApprove": ["search_repositories"],
                    },
                    "time": {"command": "uvx", "args": ["mcp-server-time"], "alwaysAllow": [], "timeout": 60},
                    "linear": {"type": "sse", "url": "https://mcp.linear.app/sse", "description": "issues"},
                },
            }
        ),
        encoding="utf-8",
    )
    with capture_logs() as logs:
        config = load_config(path, environ={})
    assert list(config.servers) == ["filesystem", "github", "time", "linear"]
    assert config.source == str(path)
    assert config.skipped == ()
    assert config.warnings == ()
    assert logs == []
    assert isinstance(config.servers["linear"], RemoteServer)
    assert config.servers["linear"].transport == "sse"


@pytest.mark.parametrize("key", ["condutor", "Conductor", "conducter"])
def test_a_near_miss_of_the_conductor_key_is_ignored_with_a_did_you_mean_warning(key: str):
    raw = {"mcpServers": {"fs": {"command": "npx"}}, key: {"defaults": {"timeout_s": 5}}}
    with capture_logs() as logs:
        config = parse(raw)
    assert config.timeout_s("fs") == DEFAULT_TIMEOUT_S
    assert config.warnings == (f'<config>: unknown top-level key "{key}" is ignored (did you mean "conductor"?)',)
    assert logs == [
        {
            "event": "config.unknown_top_level_key",
            "key": key,
            "suggestion": "conductor",
            "source": "<config>",
            "log_level": "warning",
        }
    ]


def test_a_near_miss_of_the_conductor_key_is_logged_even_when_the_config_fails():
    raw = {"mcpServers": {"fs": {"command": "${NODE}"}}, "Conductor": {"servers": {"fs": {"disabled": True}}}}
    with capture_logs() as logs:
        error = config_error(raw)
    assert "mcpServers.fs.command: environment variable ${NODE} is not set" in error.message
    assert [(e["event"], e["key"]) for e in logs] == [("config.unknown_top_level_key", "Conductor")]


def test_foreign_per_server_keys_like_auto_approve_are_accepted_and_dropped():
    config = parse(servers({"gh": {"command": "npx", "autoApprove": ["x"], "alwaysAllow": ["y"], "icon": "gh.png"}}))
    server = config.servers["gh"]
    assert isinstance(server, StdioServer)
    assert server.command == "npx"
    assert "autoApprove" not in repr(server)


# -- ${VAR} expansion ------------------------------------------------------------------------------------------


def test_variables_expand_in_command_args_env_and_cwd():
    config = parse(
        servers(
            {
                "fs": {
                    "command": "${NODE_BIN}/npx",
                    "args": ["-y", "pkg", "${HOME}/notes", "--mode=${MODE:-fast}"],
                    "env": {"TOKEN": "${GH_TOKEN}", "LEVEL": "${LEVEL:-info}"},
                    "cwd": "${HOME}",
                }
            }
        ),
        NODE_BIN="/opt/node/bin",
        HOME="/home/ada",
        GH_TOKEN="tok",
    )
    server = config.servers["fs"]
    assert isinstance(server, StdioServer)
    assert server.command == "/opt/node/bin/npx"
    assert server.args == ("-y", "pkg", "/home/ada/notes", "--mode=fast")
    assert dict(server.env) == {"TOKEN": "tok", "LEVEL": "info"}
    assert server.cwd == "/home/ada"


def test_variables_expand_in_url_and_headers_and_a_set_variable_beats_its_default():
    config = parse(
        servers(
            {
                "api": {
                    "type": "http",
                    "url": "https://${HOST:-localhost}:${PORT:-8000}/mcp",
                    "headers": {"Authorization": "Bearer ${TOKEN}"},
                }
            }
        ),
        HOST="api.example.test",
        TOKEN="abc",
    )
    server = config.servers["api"]
    assert isinstance(server, RemoteServer)
    assert server.url == "https://api.example.test:8000/mcp"
    assert dict(server.headers) == {"Authorization": "Bearer abc"}


def test_an_empty_default_expands_to_an_empty_string():
    server = parse(servers({"s": {"command": "run", "args": ["${EXTRA:-}"]}})).servers["s"]
    assert isinstance(server, StdioServer)
    assert server.args == ("",)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"command": "${NODE}/npx"}, "mcpServers.srv.command"),
        ({"command": "npx", "args": ["-y", "${PKG}"]}, "mcpServers.srv.args[1]"),
        ({"command": "npx", "env": {"API_KEY": "${API_KEY}"}}, "mcpServers.srv.env.API_KEY"),
        ({"url": "https://${HOST}/mcp"}, "mcpServers.srv.url"),
        (
            {"url": "https://h/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}},
            "mcpServers.srv.headers.Authorization",
        ),
    ],
)
def test_a_missing_variable_is_an_error_naming_the_server_and_the_field(entry: dict[str, object], field: str):
    error = config_error(servers({"srv": entry}))
    assert f"{field}: environment variable $" in error.message
    assert "is not set" in error.message


REMOTE = {"type": "http", "url": "https://mcp.example.test/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}


@pytest.mark.parametrize(
    ("entry", "settings"),
    [
        ({**REMOTE, "disabled": True}, {}),
        (REMOTE, {"remote": {"disabled": True}}),
        ({"command": "${NODE_BIN}/npx", "env": {"KEY": "${API_KEY}"}, "disabled": True}, {}),
    ],
)
def test_a_disabled_server_loads_without_its_unset_variables(entry: dict[str, object], settings: dict[str, object]):
    server = parse(servers({"remote": entry}, servers=settings)).servers["remote"]
    assert server.settings.disabled is True
    # it never starts; the unset references stay as written rather than becoming empty strings
    if isinstance(server, RemoteServer):
        assert dict(server.headers) == {"Authorization": "Bearer ${TOKEN}"}
    else:
        assert isinstance(server, StdioServer)
        assert (server.command, dict(server.env)) == ("${NODE_BIN}/npx", {"KEY": "${API_KEY}"})


def test_a_disabled_server_still_expands_the_variables_that_are_set():
    server = parse(servers({"remote": {**REMOTE, "disabled": True}}), TOKEN="abc").servers["remote"]
    assert isinstance(server, RemoteServer)
    assert dict(server.headers) == {"Authorization": "Bearer abc"}


@pytest.mark.parametrize(
    "raw",
    [
        servers({"remote": {**REMOTE, "disabled": False}}),
        servers({"remote": REMOTE}, servers={"remote": {"disabled": False}}),
    ],
)
def test_once_enabled_the_server_needs_its_variables_again(raw: dict[str, object]):
    error = config_error(raw)
    assert error.message == (
        "<config>: 1 problem in the config:\n"
        "  - mcpServers.remote.headers.Authorization: environment variable ${TOKEN} is not set "
        "(set it, or write ${TOKEN:-default})"
    )


def test_a_server_disabled_in_the_conductor_section_stays_disabled_when_another_setting_there_is_wrong():
    raw = servers({"remote": REMOTE}, defaults={"timeout_s": 0}, servers={"remote": {"disabled": True}})
    error = config_error(raw)
    assert error.message == (
        "<config>: 1 problem in the config:\n  - conductor.defaults.timeout_s: input should be greater than 0"
    )


# -- error paths -----------------------------------------------------------------------------------------------


def test_invalid_json_reports_line_and_column():
    text = '{\n  "mcpServers": {\n    "a": {"command": "x",}\n  }\n}'
    with pytest.raises(ConfigError) as exc:
        parse_config(text, source="conf.json", environ={})
    assert exc.value.message.startswith("conf.json: invalid JSON at line 3, column 26:")
    assert exc.value.hint is not None and "trailing comma" in exc.value.hint


def test_a_missing_file_is_a_config_error_naming_the_path(tmp_path: Path):
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.json")
    assert exc.value.message == f"config file not found: {tmp_path / 'nope.json'}"


@pytest.mark.parametrize("raw", [[], "mcpServers", 3, None])
def test_a_top_level_that_is_not_an_object_is_rejected(raw: object):
    error = config_error(raw)
    assert error.message == '<config>: the config must be a JSON object with an "mcpServers" object'


def test_a_missing_mcp_servers_key_suggests_the_near_miss():
    error = config_error({"mcpServer": {"a": {"command": "x"}}})
    assert error.message == '<config>: no "mcpServers" object (found "mcpServer": did you mean "mcpServers"?)'


def test_a_missing_mcp_servers_key_without_a_near_miss_says_what_to_add():
    error = config_error({"globalShortcut": "Ctrl+Space"})
    assert error.message == '<config>: no "mcpServers" object'
    assert error.hint == 'add "mcpServers": {NAME: {...}}'


def test_mcp_servers_must_be_an_object():
    error = config_error({"mcpServers": ["a"]})
    assert '"mcpServers" must be an object' in error.message


def test_a_misspelled_command_key_gets_did_you_mean():
    error = config_error(servers({"fs": {"comand": "npx", "args": []}}))
    assert 'mcpServers.fs: needs "command" (a stdio server) or "url" (a remote server)' in error.message
    assert 'unknown key "comand" (did you mean "command"?)' in error.message


def test_an_unknown_key_next_to_a_valid_command_gets_did_you_mean():
    error = config_error(servers({"fs": {"command": "npx", "arg": ["-y"]}}))
    assert '  - mcpServers.fs.arg: unknown key "arg" (did you mean "args"?)' in error.message


def test_an_unknown_conductor_setting_gets_did_you_mean_at_its_own_depth():
    error = config_error(
        servers(
            {"fs": {"command": "npx"}},
            defaults={"max_concurency": 2},
            servers={"fs": {"timeout": 5, "tools": {"alow": ["read"]}}},
        )
    )
    assert 'conductor.defaults.max_concurency: unknown key "max_concurency" (did you mean "max_concurrency"?)' in (
        error.message
    )
    assert 'conductor.servers.fs.timeout: unknown key "timeout" (did you mean "timeout_s"?)' in error.message
    assert 'conductor.servers.fs.tools.alow: unknown key "alow" (did you mean "allow"?)' in error.message
    assert error.message.startswith("<config>: 3 problems in the config:")


def test_args_that_are_not_a_list_name_the_field_and_what_was_expected():
    error = config_error(servers({"fs": {"command": "npx", "args": "-y server"}}))
    assert "mcpServers.fs.args: input should be a valid list" in error.message


def test_a_stdio_entry_without_command_is_rejected():
    error = config_error(servers({"fs": {"args": ["-y", "pkg"], "env": {}}}))
    assert error.message.endswith('mcpServers.fs: needs "command" (a stdio server) or "url" (a remote server)')


@pytest.mark.parametrize("kind", ["http", "streamable-http", "sse"])
def test_a_remote_entry_without_url_is_rejected(kind: str):
    error = config_error(servers({"api": {"type": kind, "headers": {}}}))
    assert f'mcpServers.api: a remote server (type "{kind}") needs a "url"' in error.message


def test_an_entry_that_is_not_an_object_is_rejected():
    error = config_error(servers({"fs": "npx -y pkg"}))
    assert 'mcpServers.fs: expected an object with "command" (stdio) or "url" (remote)' in error.message


def test_conductor_settings_for_an_unknown_server_are_rejected_with_did_you_mean():
    error = config_error(servers({"files": {"command": "npx"}}, servers={"file": {"timeout_s": 3}}))
    assert 'conductor.servers.file: no server "file" in mcpServers (did you mean "files"?)' in error.message


@pytest.mark.parametrize("name", ["text/extra", "has space", "", "x" * 65])
def test_a_server_name_that_cannot_form_a_tool_id_is_rejected(name: str):
    error = config_error(servers({name: {"command": "npx"}}))
    assert f"mcpServers.{name}: server names may use letters, digits" in error.message


def test_out_of_range_settings_are_rejected():
    error = config_error(servers({"fs": {"command": "npx"}}, servers={"fs": {"max_concurrency": 0, "timeout_s": -1}}))
    assert "conductor.servers.fs.max_concurrency: input should be greater than or equal to 1" in error.message
    assert "conductor.servers.fs.timeout_s: input should be greater than 0" in error.message


def test_a_bad_default_and_an_unknown_server_name_in_the_conductor_section_are_both_reported():
    error = config_error(
        servers({"time": {"command": "npx"}}, defaults={"timout_s": 5}, servers={"tiem": {"timeout_s": 3}})
    )
    assert error.message == (
        "<config>: 2 problems in the config:\n"
        '  - conductor.defaults.timout_s: unknown key "timout_s" (did you mean "timeout_s"?)\n'
        '  - conductor.servers.tiem: no server "tiem" in mcpServers (did you mean "time"?)'
    )


def test_one_problem_is_counted_in_the_singular():
    error = config_error(servers({"fs": {"command": "npx", "arg": []}}))
    assert error.message.startswith("<config>: 1 problem in the config:\n  - mcpServers.fs.arg:")


def test_every_problem_is_reported_at_once():
    error = config_error(servers({"a": {"args": []}, "b": {"type": "sse"}, "c/d": {"command": "x"}}))
    assert error.message.startswith("<config>: 3 problems in the config:")
    assert [line.split(":")[0] for line in error.message.splitlines()[1:]] == [
        "  - mcpServers.a",
        "  - mcpServers.b",
        "  - mcpServers.c/d",
    ]


# -- secrets ---------------------------------------------------------------------------------------------------


def secret_config() -> ConductorConfig:
    return parse(
        servers(
            {
                "gh": {"command": "npx", "args": ["-y", "server-github"], "env": {"GITHUB_TOKEN": SECRET_ENV}},
                "api": {"type": "http", "url": "https://mcp.example.test/mcp", "headers": {"Authorization": "${AUTH}"}},
            }
        ),
        AUTH=SECRET_HEADER,
    )


def test_secret_values_are_loaded_but_never_shown_in_repr_or_str():
    config = secret_config()
    gh, api = config.servers["gh"], config.servers["api"]
    assert isinstance(gh, StdioServer) and isinstance(api, RemoteServer)
    assert gh.env["GITHUB_TOKEN"] == SECRET_ENV
    assert api.headers["Authorization"] == SECRET_HEADER
    for text in (repr(config), str(config), repr(gh), repr(api), repr(config.servers)):
        assert SECRET_ENV not in text
        assert "s3cr3t-header-token" not in text


def test_public_views_redact_env_and_header_values_but_keep_their_names():
    config = secret_config()
    assert config.servers["gh"].public() == {
        "transport": "stdio",
        "command": "npx",
        "args": ["-y", "server-github"],
        "env": {"GITHUB_TOKEN": "***"},
    }
    assert config.servers["api"].public() == {
        "transport": "streamable-http",
        "url": "https://mcp.example.test/mcp",
        "headers": {"Authorization": "***"},
    }


def test_public_url_drops_userinfo_and_query_which_may_carry_credentials():
    config = parse(servers({"api": {"url": "https://user:pa55word@h.test/mcp?key=s3cr3t-q"}}))
    public = json.dumps(config.servers["api"].public())
    assert "pa55word" not in public and "s3cr3t-q" not in public
    assert config.servers["api"].public()["url"] == "https://***@h.test/mcp?***"


@pytest.mark.parametrize(
    "entry",
    [
        {"command": "npx", "env": {"TOKEN": SECRET_ENV}, "comand": "x"},
        {"command": "npx", "env": {"TOKEN": SECRET_ENV, "OTHER": "${MISSING_VAR}"}},
        {"command": "npx", "env": {"TOKEN": [SECRET_ENV]}},
        {"command": "npx", "env": SECRET_ENV},
        {"env": {"TOKEN": SECRET_ENV}},
        {"url": "https://h/mcp", "headers": {"Authorization": SECRET_HEADER, "X": "${MISSING_VAR}"}},
        {"url": "https://h/mcp", "headers": {"Authorization": {"v": SECRET_HEADER}}},
        {"url": "https://h/mcp", "headers": SECRET_HEADER},
        {"type": "sse", "headers": {"Authorization": SECRET_HEADER}},
    ],
)
def test_config_errors_never_contain_secret_values(entry: dict[str, object]):
    error = config_error(servers({"srv": entry}))
    text = f"{error}\n{error.message}\n{error.hint}\n{error.describe()}"
    assert "mcpServers.srv" in text
    assert SECRET_ENV not in text
    assert "s3cr3t-header-token" not in text


# -- self-reference --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        {"command": "mcp-conductor", "args": ["serve", "--config", "c.json"]},
        {"command": "/usr/local/bin/mcp-conductor", "args": ["serve"]},
        {"command": "uvx", "args": ["mcp-conductor", "serve"]},
        {"command": "uvx", "args": ["mcp-conductor@0.1.0", "serve"]},
        {"command": "python", "args": ["-m", "mcp_conductor", "serve"]},
    ],
)
def test_an_entry_that_runs_mcp_conductor_itself_is_skipped(entry: dict[str, object]):
    config = parse(servers({"conductor": entry, "text": {"command": "python", "args": ["-m", "x"]}}))
    assert config.skipped == ("conductor",)
    assert list(config.servers) == ["text"]


def test_demo_servers_inside_the_package_are_not_mistaken_for_mcp_conductor():
    config = parse(servers({"text": {"command": "python", "args": ["-m", "mcp_conductor.demo.text"]}}))
    assert config.skipped == ()
    assert list(config.servers) == ["text"]


# -- conductor settings ----------------------------------------------------------------------------------------


def test_unset_settings_fall_back_to_the_built_in_defaults():
    config = parse(servers({"fs": {"command": "npx"}}))
    assert config.timeout_s("fs") == DEFAULT_TIMEOUT_S
    assert config.connect_timeout_s("fs") == DEFAULT_CONNECT_TIMEOUT_S
    assert config.max_concurrency("fs") == DEFAULT_SERVER_CONCURRENCY
    assert config.servers["fs"].settings.disabled is False
    assert config.servers["fs"].settings.tools.admits("anything")


def test_per_server_settings_override_conductor_defaults_which_override_built_ins():
    config = parse(
        servers(
            {"fast": {"command": "a"}, "slow": {"command": "b"}},
            defaults={"timeout_s": 20, "connect_timeout_s": 5, "max_concurrency": 4},
            servers={"slow": {"timeout_s": 120, "connect_timeout_s": 45, "max_concurrency": 1}},
        )
    )
    assert (config.timeout_s("fast"), config.connect_timeout_s("fast"), config.max_concurrency("fast")) == (20, 5, 4)
    assert (config.timeout_s("slow"), config.connect_timeout_s("slow"), config.max_concurrency("slow")) == (120, 45, 1)


def test_a_server_is_disabled_by_its_entry_or_by_the_conductor_section():
    config = parse(
        servers(
            {"a": {"command": "x", "disabled": True}, "b": {"url": "https://h/mcp"}, "c": {"command": "y"}},
            servers={"b": {"disabled": True}},
        )
    )
    assert [config.servers[n].settings.disabled for n in ("a", "b", "c")] == [True, True, False]


def test_tool_allow_and_deny_lists_filter_by_bare_name():
    config = parse(
        servers(
            {"fs": {"command": "x"}, "gh": {"command": "y"}},
            servers={
                "fs": {"tools": {"allow": ["read_file", "list_dir", "write_file"], "deny": ["write_file"]}},
                "gh": {"tools": {"deny": ["delete_repo"]}},
            },
        )
    )
    fs, gh = config.servers["fs"].settings.tools, config.servers["gh"].settings.tools
    assert [fs.admits(n) for n in ("read_file", "list_dir", "write_file", "search")] == [True, True, False, False]
    assert [gh.admits(n) for n in ("delete_repo", "search")] == [False, True]


# -- the shipped example ---------------------------------------------------------------------------------------


def test_the_example_config_loads_without_the_remote_token_and_starts_only_python_and_npx():
    config = load_config(Path(__file__).parents[2] / "mcp-conductor.example.json", environ={"HOME": "/home/ada"})
    remote = config.servers["remote"]
    assert isinstance(remote, RemoteServer)
    assert remote.settings.disabled is True
    started = [server for server in config.servers.values() if not server.settings.disabled]
    assert started, "the example should start something"
    assert all(isinstance(s, StdioServer) and s.command in (sys.executable, "npx") for s in started)
    assert config.servers["filesystem"].public()["args"][-1] == "/home/ada"
    assert (config.warnings, config.skipped) == ((), ())


def test_the_engine_section_picks_temporal_with_its_address_namespace_and_task_queue():
    engine = {"kind": "temporal", "address": "10.0.0.5:7233", "namespace": "team", "task_queue": "chains"}
    config = build_config({"mcpServers": {}, "conductor": {"engine": engine}})
    assert (config.engine.kind, config.engine.address) == ("temporal", "10.0.0.5:7233")
    assert (config.engine.namespace, config.engine.task_queue) == ("team", "chains")
    assert build_config({"mcpServers": {}}).engine.kind == "local"


def test_the_temporal_engine_without_an_address_is_a_config_error_that_says_so():
    with pytest.raises(ConfigError) as caught:
        build_config({"mcpServers": {}, "conductor": {"engine": {"kind": "temporal"}}})
    assert "address" in str(caught.value.summary())
