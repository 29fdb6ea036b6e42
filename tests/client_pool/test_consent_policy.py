"""``conductor.consent``: effect classes from annotations and patterns, which steps need consent, and config
errors that say what to fix."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_conductor.client_pool.catalog import ServerName, ToolInfo
from mcp_conductor.client_pool.config import build_config
from mcp_conductor.client_pool.consent_policy import ConsentPolicy, allow_line
from mcp_conductor.errors import ConfigError

SERVERS = {"fs": {"command": "fs-server"}}


def tool(name: str, **annotations: bool) -> ToolInfo:
    return ToolInfo(server=ServerName("fs"), name=name, annotations=annotations or None)


def test_effects_come_from_the_annotations_and_the_config_names_unannotated_destructive_tools():
    policy = ConsentPolicy(destructive=("fs/rm*",))
    assert policy.effect(tool("read_file", readOnlyHint=True)) == "read_only"
    assert policy.effect(tool("write_file", destructiveHint=True)) == "destructive"
    assert policy.effect(tool("append")) == "writes"
    assert policy.effect(tool("append", destructiveHint=False)) == "writes"
    assert policy.effect(tool("rmdir")) == "destructive"  # named by the config, though not annotated


def test_ask_mode_asks_for_destructive_tools_and_ask_patterns_unless_allowed():
    policy = ConsentPolicy(allow=("fs/write_*",), ask=("fs/app*",))
    assert policy.reason("fs/delete", "destructive") == "destructive"
    assert policy.reason("fs/write_file", "destructive") is None
    assert policy.reason("fs/append", "writes") == "ask"
    assert policy.reason("fs/other", "writes") is None
    assert ConsentPolicy(mode="allow").reason("fs/delete", "destructive") is None


def test_the_config_loads_the_policy_and_reports_bad_patterns_and_keys_at_once():
    config = build_config({"mcpServers": SERVERS, "conductor": {"consent": {"allow": ["fs/*"]}}})
    assert config.consent == ConsentPolicy(allow=("fs/*",))
    assert build_config({"mcpServers": SERVERS}).consent.mode == "ask"
    with pytest.raises(ConfigError) as caught:
        build_config(
            {"mcpServers": SERVERS, "conductor": {"consent": {"mode": "never", "allow": ["write_file"], "aks": []}}}
        )
    message = str(caught.value)
    assert "3 problems" in message
    assert "conductor.consent.mode" in message
    assert 'pattern "write_file" names no server' in message and "*/write_file" in message
    assert 'unknown key "aks" (did you mean "ask"?)' in message


def test_the_allow_line_is_the_exact_config_text():
    assert allow_line(["fs/b", "fs/a", "fs/b"]) == '"conductor": {"consent": {"allow": ["fs/a", "fs/b"]}}'


@given(
    patterns=st.lists(st.text(min_size=1, max_size=20).map(lambda t: "s/" + t), max_size=4),
    name=st.text(min_size=1, max_size=20),
)
def test_any_pattern_classifies_any_tool_without_crashing(patterns: list[str], name: str):
    policy = ConsentPolicy(allow=tuple(patterns), ask=tuple(patterns), destructive=tuple(patterns))
    info = ToolInfo(server=ServerName("s"), name=name)
    effect = policy.effect(info)
    assert effect in ("writes", "destructive")
    assert policy.reason(info.id, effect) in (None, "destructive", "ask")
