"""The saved-chain table: versions newest first, no-op re-saves, description updates, deletes, run links."""

from dataclasses import replace
from pathlib import Path

from mcp_conductor.server.store.chains import ChainRun, ChainStore, SavedChain
from mcp_conductor.server.store.store import RunStore

V1 = SavedChain(name="c", version="00000001", description="one", inputs_schema={"type": "object"}, plan={"steps": []})


async def test_versions_are_kept_newest_first_and_a_re_save_is_a_no_op_unless_the_description_changed(tmp_path: Path):
    v2 = replace(V1, version="00000002")
    async with RunStore.open(tmp_path) as store:
        chains = ChainStore(store)
        before = await chains.generation()
        outcomes = [await chains.save(V1), await chains.save(v2), await chains.save(V1)]
        described = await chains.save(replace(V1, description="better"))
        after = await chains.generation()
        newest = await chains.get("c")
        pinned = await chains.get("c", "00000001")
        versions = [c.version for c in await chains.versions("c")]
    assert outcomes == ["created", "created", "unchanged"]
    assert described == "description_updated"
    assert before != after
    assert newest is not None and newest.version == "00000002"
    assert pinned is not None and pinned.description == "better" and pinned.created_at
    assert versions == ["00000002", "00000001"]


async def test_delete_removes_one_version_or_all_and_run_links_outlive_only_their_runs(tmp_path: Path):
    async with RunStore.open(tmp_path) as store:
        chains = ChainStore(store)
        await chains.save(V1)
        await chains.save(replace(V1, version="00000002"))
        await chains.save(replace(V1, name="d"))
        one = await chains.delete("c", "00000002")
        left = [c.version for c in await chains.versions("c")]
        every = await chains.delete("c")
        names = [c.name for c in await chains.newest()]
        await chains.record_run(ChainRun("run_gone", "d", V1.version))
        links = await chains.runs(chain="d")
    assert (one, left, every, names) == (1, ["00000001"], 1, ["d"])
    assert links == []  # the run itself was never stored: a link to nothing is not listed
