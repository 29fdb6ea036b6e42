"""``mcp-conductor chains list|show|delete|export|import`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_conductor.client_pool.config import in_process_config
from mcp_conductor.demo import latency
from mcp_conductor.server.conductor import Conductor

ECHO = {
    "inputs": {"text": "hi"},
    "steps": [{"id": "say", "tool": "latency/echo", "arguments": {"value": "${inputs.text}"}}],
}
SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}


async def save_two_versions(state: Path) -> list[str]:
    """chain ``say`` in two versions, and one run of it; returns the versions, oldest first."""
    changed = {**ECHO, "steps": [{**ECHO["steps"][0], "arguments": {"value": "${inputs.text}!"}}]}
    versions = []
    async with Conductor.open(in_process_config({"latency": latency.build_server()}), state) as conductor:
        for plan in (ECHO, changed):
            checked = await conductor.plan(plan, save_as={"name": "say", "description": "Say a text", "inputs": SCHEMA})
            assert checked.saved is not None, checked.errors
            versions.append(checked.saved.version)
        run = await conductor.execute(chain="say", inputs={"text": "yo"})
        assert run.status == "succeeded", run
    return versions


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, list[str]]:
    state = tmp_path / "state"
    return state, anyio.run(save_two_versions, state)


def test_chains_list_shows_each_chain_with_its_newest_version(cli, saved):
    state, versions = saved
    done = cli("chains", "list", "--json", "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {
            "name": "say",
            "version": versions[1],
            "versions": 2,
            "inputs": ["text"],
            "steps": 1,
            "description": "Say a text",
        }
    ]
    text = cli("chains", "list", "--state-dir", str(state)).stdout
    assert text.splitlines()[1].split()[:4] == ["say", versions[1], "2", "1"]


def test_chains_show_prints_inputs_steps_versions_and_runs_and_a_pinned_version_as_json(cli, saved):
    state, versions = saved
    shown = cli("chains", "show", "say", "--state-dir", str(state))
    pinned = cli("chains", "show", f"say@{versions[0]}", "--json", "--state-dir", str(state))
    assert shown.returncode == 0, shown.stderr
    assert f"chain/say@{versions[1]}" in shown.stdout
    assert "text: string (required)" in shown.stdout
    assert "say: latency/echo" in shown.stdout
    assert f"versions, newest first: {versions[1]} (newest), {versions[0]}" in shown.stdout
    assert "runs: 1 run (0 as a sub-run)" in shown.stdout
    exported = json.loads(pinned.stdout)
    assert exported["version"] == versions[0]
    assert exported["plan"]["steps"][0]["arguments"] == {"value": "${inputs.text}"}


def test_export_then_import_into_another_store_round_trips_and_importing_again_changes_nothing(
    cli, saved, tmp_path: Path
):
    state, versions = saved
    path = tmp_path / "say.json"
    other = tmp_path / "other"
    exported = cli("chains", "export", "say", "-o", str(path), "--state-dir", str(state))
    first = cli("chains", "import", str(path), "--state-dir", str(other))
    again = cli("chains", "import", str(path), "--state-dir", str(other))
    assert exported.returncode == 0 and first.returncode == 0 and again.returncode == 0, first.stderr
    assert f"say@{versions[0]}: created" in first.stderr and f"say@{versions[1]}: created" in first.stderr
    assert f"say@{versions[0]}: unchanged" in again.stderr and f"say@{versions[1]}: unchanged" in again.stderr
    original = json.loads(cli("chains", "show", "say", "--json", "--state-dir", str(state)).stdout)
    copied = json.loads(cli("chains", "show", "say", "--json", "--state-dir", str(other)).stdout)
    assert {k: v for k, v in copied.items() if k != "created_at"} == {
        k: v for k, v in original.items() if k != "created_at"
    }


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda doc: {"format": "something/1"}, "not a chain export"),
        (lambda doc: {**doc, "versions": []}, "holds no versions"),
        (lambda doc: {**doc, "versions": [{**doc["versions"][0], "name": "Bad Name"}]}, "is not a chain name"),
        (lambda doc: {**doc, "versions": [{**doc["versions"][0], "plan": {"steps": []}}]}, "plan.steps"),
        (lambda doc: {**doc, "versions": [{**doc["versions"][0], "inputs": {"type": 3}}]}, "is not valid under"),
        (
            lambda doc: {
                **doc,
                "versions": [{**doc["versions"][0], "plan": {**doc["versions"][0]["plan"], "inputs": {}}}],
            },
            "does not match its content",
        ),
    ],
)
def test_import_refuses_garbage_with_a_clear_error_and_stores_nothing(
    cli, saved, tmp_path: Path, change: Any, said: str
):
    state, _ = saved
    document = json.loads(cli("chains", "export", "say", "--state-dir", str(state)).stdout)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(change(document)), encoding="utf-8")
    other = tmp_path / "other"
    done = cli("chains", "import", str(path), "--state-dir", str(other))
    assert done.returncode == 2
    assert said in done.stderr
    assert "hint: make one with `mcp-conductor chains export NAME -o FILE`" in done.stderr
    assert json.loads(cli("chains", "list", "--json", "--state-dir", str(other)).stdout) == []


def test_delete_one_version_then_the_chain_and_an_unknown_chain_is_a_usage_error(cli, saved):
    state, versions = saved
    one = cli("chains", "delete", f"say@{versions[1]}", "--state-dir", str(state))
    newest = json.loads(cli("chains", "list", "--json", "--state-dir", str(state)).stdout)[0]["version"]
    every = cli("chains", "delete", "say", "--state-dir", str(state))
    gone = cli("chains", "delete", "say", "--state-dir", str(state))
    bad = cli("chains", "show", "Not A Name", "--state-dir", str(state))
    assert one.returncode == 0 and "deleted 1 version of chain say" in one.stderr
    assert newest == versions[0]
    assert every.returncode == 0 and "deleted 1 version" in every.stderr
    assert gone.returncode == 2 and "no saved chain 'say'" in gone.stderr
    assert bad.returncode == 2 and "is not a chain name" in bad.stderr


def test_plan_save_as_saves_the_chain_and_says_its_version(cli, tmp_path: Path):
    from mcp_conductor.demo import DEMO_CONFIG_PATH

    plan = tmp_path / "say.json"
    plan.write_text(json.dumps(ECHO), encoding="utf-8")
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA), encoding="utf-8")
    state = str(tmp_path / "state")
    common = ("--config", str(DEMO_CONFIG_PATH), "--state-dir", state, "--save-as", "say", "--description", "Say it")
    first = cli("plan", str(plan), *common, "--inputs-schema", str(schema))
    again = cli("plan", str(plan), *common, "--inputs-schema", str(schema), "--json")
    lone = cli("plan", str(plan), "--description", "x", "--state-dir", state)
    assert first.returncode == 0, first.stderr
    saved = json.loads(again.stdout)["saved"]
    assert f"saved          chain/say@{saved['version']} (created)" in first.stdout
    assert saved["status"] == "unchanged"
    assert lone.returncode == 2 and "go with --save-as" in lone.stderr
    listed = json.loads(cli("chains", "list", "--json", "--state-dir", state).stdout)
    assert [(c["name"], c["description"], c["inputs"]) for c in listed] == [("say", "Say it", ["text"])]
