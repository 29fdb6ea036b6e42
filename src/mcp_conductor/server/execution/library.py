"""The saved-chain library: saving a checked plan under a name, finding chains by ``name[@version]``, what the
planner and ``discover_tools`` see of them, and whether they went stale.

A chain is saved only from a valid plan; its version is the content hash of the normalized plan and its inputs
schema (``planning.saved_chains.chain_version``). Each chain step of a plan names ``chain/NAME`` (the newest
version at run time) or ``chain/NAME@VERSION``; the library gives the planner a ``ChainTool`` for every saved
chain and for every pinned version a plan names, with the chain names it reaches, so recursion is a plan error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from mcp_conductor.client_pool.catalog import CatalogSnapshot, ServerName, ToolId, ToolInfo
from mcp_conductor.client_pool.pool import ClientPool
from mcp_conductor.errors import ConductorError
from mcp_conductor.server.planning.models import Plan, PlanIssue, PlanResult, SavedChainRef
from mcp_conductor.server.planning.saved_chains import (
    CHAIN_PREFIX,
    CHAIN_SERVER,
    ChainRef,
    ChainRefError,
    ChainTool,
    SaveAs,
    chain_version,
    check_inputs,
    check_save,
    fingerprint,
    parse_ref,
    plan_effect,
    plan_uses,
    recursion_issues,
)
from mcp_conductor.server.store.chains import ChainStore, SavedChain
from mcp_conductor.server.store.store import RunStore
from mcp_conductor.suggest import close_matches

EXPORT_FORMAT = "mcp-conductor.chain/1"


class ChainNotFoundError(ConductorError):
    kind = "unknown_chain"


def chain_tool_info(chain: SavedChain, pinned: bool = False) -> ToolInfo:
    """The chain as a tool: ``chain/NAME`` (or ``chain/NAME@VERSION``); its value is the object of its outputs."""
    properties: dict[str, Any] = {out: {} for out in chain.outputs}
    output_schema = {"type": "object", "properties": properties, "required": list(chain.outputs)}
    return ToolInfo(
        server=ServerName(CHAIN_SERVER),
        name=f"{chain.name}@{chain.version}" if pinned else chain.name,
        description=chain.description or f"saved chain {chain.name}",
        title=f"saved chain {chain.name}@{chain.version}",
        input_schema=dict(chain.inputs_schema),
        output_schema=output_schema,
        annotations={"readOnlyHint": chain.effect == "read_only", "destructiveHint": chain.effect == "destructive"},
    )


def staleness(chain: SavedChain, snapshot: CatalogSnapshot, unavailable: set[str], known: set[str]) -> str | None:
    """Why a saved chain may no longer work against today's catalog (a tool gone, an input schema changed, a
    sub-chain deleted), or None."""
    reasons = []
    for tool_id, saved_print in chain.tools.items():
        server = tool_id.partition("/")[0]
        tool = snapshot.tools.get(ToolId(tool_id))
        if tool is None and server in unavailable:
            reasons.append(f"server {server!r} is not connected, so {tool_id} cannot be checked")
        elif tool is None:
            reasons.append(f"tool {tool_id} is gone")
        elif fingerprint(tool.input_schema) != saved_print:
            reasons.append(f"the input schema of {tool_id} changed since the chain was saved")
    reasons += [f"chain/{ref} is gone" for ref in chain.chains if ref.partition("@")[0] not in known]
    return "; ".join(reasons) or None


@dataclass(frozen=True, slots=True)
class DiscoverableChains:
    """What ``discover_tools`` indexes beside the catalog: a key that changes with them, the chains as tools,
    and the stale ones' reasons by tool id."""

    key: tuple[Any, ...]
    tools: Sequence[ToolInfo]
    stale: Mapping[str, str]
    servers: tuple[str, ...] = (CHAIN_SERVER,)


class ChainLibrary:
    """The saved chains of one store, with the newest versions cached (refreshed when the table changes)."""

    def __init__(self, store: RunStore, pool: ClientPool) -> None:
        self.chains = ChainStore(store)
        self._pool = pool
        self._newest: dict[str, SavedChain] = {}
        self._generation: tuple[int, int] | None = None

    @property
    def generation(self) -> tuple[int, int] | None:
        return self._generation

    async def refresh(self) -> dict[str, SavedChain]:
        """The newest version of each chain, read again only when the table changed.

        Raises:
            StoreError: the store cannot be read.
        """
        generation = await self.chains.generation()
        if generation != self._generation:
            self._newest = {c.name: c for c in await self.chains.newest()}
            self._generation = generation
        return self._newest

    async def resolve(self, ref: ChainRef | str) -> SavedChain:
        """The chain a reference names (the newest version unless it pins one).

        Raises:
            ChainRefError: not a chain name.
            ChainNotFoundError: no such chain or version.
            StoreError: the store cannot be read.
        """
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        newest = await self.refresh()
        found = newest.get(ref.name) if ref.version is None else await self.chains.get(ref.name, ref.version)
        if found is None:
            versions = [c.version for c in await self.chains.versions(ref.name)]
            if versions:
                raise ChainNotFoundError(f"chain {ref.name!r} has no version {ref.version!r}", hint=_versions(versions))
            fixes = close_matches(ref.name, newest)
            hint = f"did you mean {fixes[0]!r}?" if fixes else "`mcp-conductor chains list` shows the saved chains"
            raise ChainNotFoundError(f"no saved chain {ref.name!r}", hint=hint)
        return found

    async def open(self, chain: str, inputs: Mapping[str, Any], *, also: Any = None) -> SavedChain | list[PlanIssue]:
        """The chain ``execute_chain`` runs by ``NAME[@VERSION]``, or why not (no such chain, inputs that do not fit
        its inputs schema).

        Raises:
            StoreError: the store cannot be read.
        """
        if also is not None:
            hint = "give chain alone (with inputs), or a plan / plan_id without chain"
            return [PlanIssue(field="/chain", kind="invalid_arguments", message="chain and plan both given", hint=hint)]
        try:
            saved = await self.resolve(chain)
        except (ChainRefError, ChainNotFoundError) as exc:
            return [PlanIssue(field="/chain", kind=exc.kind, message=exc.message, hint=exc.hint)]
        takes = ", ".join(saved.inputs_schema.get("properties") or {}) or "no inputs"
        hint = f"chain/{saved.name} takes: {takes} (see its input_schema in discover_tools)"
        problems = check_inputs(saved.inputs_schema, inputs)
        return [PlanIssue(field="/inputs", kind="invalid_inputs", message=p, hint=hint) for p in problems] or saved

    async def chain_tools(self, raw: Mapping[str, Any] | Plan) -> dict[str, ChainTool]:
        """Every saved chain's newest version as ``chain/NAME``, and every pinned version ``raw`` names.

        Raises:
            StoreError: the store cannot be read.
        """
        newest = await self.refresh()
        chains: dict[str, tuple[SavedChain, bool]] = {CHAIN_PREFIX + c.name: (c, False) for c in newest.values()}
        for name in _pinned_refs(raw):
            try:
                ref = parse_ref(name)
            except ChainRefError:
                continue  # the planner reports it
            if ref.version is not None and (found := await self.chains.get(ref.name, ref.version)) is not None:
                chains[CHAIN_PREFIX + str(ref)] = (found, True)
        tools = {}
        for tool_id, (chain, pinned) in chains.items():
            reaches = await self._reaches(chain, newest)
            tools[tool_id] = ChainTool(chain_tool_info(chain, pinned), chain.name, chain.estimated_latency_ms, reaches)
        return tools

    async def _reaches(self, chain: SavedChain, newest: Mapping[str, SavedChain]) -> frozenset[str]:
        found: set[str] = set()
        todo, seen = list(chain.chains), set()
        while todo:
            text = todo.pop()
            if text in seen:
                continue
            seen.add(text)
            name, _, version = text.partition("@")
            found.add(name)
            sub = newest.get(name) if not version else await self.chains.get(name, version)
            todo += sub.chains if sub is not None else ()
        return frozenset(found)

    @staticmethod
    def refuse_recursion(result: PlanResult, chains: Mapping[str, ChainTool]) -> PlanResult:
        """``result``, made invalid if a chain step reaches a chain that reaches itself."""
        if not result.valid or result.normalized_plan is None:
            return result
        return invalid(result, recursion_issues(result.normalized_plan, chains, None))

    @staticmethod
    def with_chains(snapshot: CatalogSnapshot, chains: Mapping[str, ChainTool]) -> CatalogSnapshot:
        """The catalog with the saved chains in it (for the consent policy's effect of each chain step)."""
        return replace(snapshot, tools={**snapshot.tools, **{ToolId(k): chain.info for k, chain in chains.items()}})

    async def save(self, result: PlanResult, save_as: SaveAs, chains: Mapping[str, ChainTool]) -> PlanResult:
        """Save a valid plan's normalized form under ``save_as.name``: ``result`` with ``saved``, or made invalid
        when ``save_as`` does not fit the plan or the chain would run itself.

        Raises:
            StoreError: the store cannot be written.
        """
        plan = result.normalized_plan
        assert plan is not None
        schema, issues = check_save(plan, save_as)
        issues += recursion_issues(plan, chains, save_as.name)
        if issues:
            return invalid(result, issues)
        snapshot = self._pool.snapshot()
        dumped = plan.model_dump(mode="json")
        tools, used = plan_uses(plan, snapshot)
        infos = {tool_id: chain.info for tool_id, chain in chains.items()}
        chain = SavedChain(
            name=save_as.name,
            version=chain_version(dumped, schema),
            description=save_as.description,
            inputs_schema=schema,
            plan=dumped,
            tools=tools,
            chains=used,
            estimated_latency_ms=result.estimated_latency_ms,
            effect=plan_effect(plan, snapshot, self._pool.config.consent, infos),
        )
        previous = (await self.refresh()).get(chain.name)
        stored = await self.chains.save(chain)
        self._generation = None  # a changed description leaves the table's count and last row as they were
        status = "new_version" if stored == "created" and previous is not None else stored
        replaced = previous.version if previous is not None and previous.version != chain.version else None
        saved = SavedChainRef(
            id=f"{CHAIN_PREFIX}{chain.name}", name=chain.name, version=chain.version, status=status, previous=replaced
        )
        return result.model_copy(update={"saved": saved})

    def discoverable(self) -> DiscoverableChains:
        """The cached newest chains for ``discover_tools`` (``refresh`` first), each with its staleness."""
        snapshot = self._pool.snapshot()
        unavailable = {str(s.name) for s in self._pool.unavailable()}
        known = set(self._newest)
        tools: list[ToolInfo] = []
        stale: dict[str, str] = {}
        for chain in self._newest.values():
            info = chain_tool_info(chain)
            tools.append(info)
            if (why := staleness(chain, snapshot, unavailable, known)) is not None:
                stale[info.id] = why
        return DiscoverableChains((self._generation, snapshot.version, frozenset(unavailable)), tools, stale)


def invalid(result: PlanResult, errors: Sequence[PlanIssue]) -> PlanResult:
    """``result`` made invalid by ``errors`` found after planning (saving, recursion); unchanged without any."""
    if not errors:
        return result
    update = {"valid": False, "plan_id": None, "normalized_plan": None, "errors": (*result.errors, *errors)}
    return result.model_copy(update=update)


def _pinned_refs(raw: Mapping[str, Any] | Plan) -> list[str]:
    if isinstance(raw, Plan):
        return [s.target for s in raw.steps if s.target.startswith(CHAIN_PREFIX) and "@" in s.target]
    steps = raw.get("steps")
    found = []
    for step in steps if isinstance(steps, list) else ():
        tool = step.get("tool") if isinstance(step, Mapping) else None
        if isinstance(tool, str) and tool.startswith(CHAIN_PREFIX) and "@" in tool:
            found.append(tool)
    return found


def _versions(versions: Sequence[str]) -> str:
    return "its versions, newest first: " + ", ".join(versions[:10])


class ChainImportError(ConductorError):
    """A ``chains import`` file that is not a chain export, or a chain in it that is not sound."""

    kind = "invalid_chain_export"


def parse_export(raw: Any) -> list[SavedChain]:
    """The versions in a ``chains export`` document, each checked: the shape, the name, a plan that parses,
    a valid inputs schema, and a version that matches its content (so a hand-edited chain cannot pose as
    another version).

    Raises:
        ChainImportError: what is wrong, and where.
    """
    hint = "make one with `mcp-conductor chains export NAME -o FILE`"
    if not isinstance(raw, Mapping) or raw.get("format") != EXPORT_FORMAT or not isinstance(raw.get("versions"), list):
        raise ChainImportError(
            f'not a chain export: expected {{"format": "{EXPORT_FORMAT}", "versions": [...]}}', hint=hint
        )
    if not raw["versions"]:
        raise ChainImportError("the export holds no versions", hint=hint)
    found = []
    for index, item in enumerate(raw["versions"]):
        where = f"versions[{index}]"
        try:
            found.append(_parse_version(item))
        except (ValidationError, SchemaError, ConductorError, TypeError, ValueError, KeyError) as exc:
            reason = exc.message if isinstance(exc, ConductorError | SchemaError) else str(exc).splitlines()[0]
            if isinstance(exc, ValidationError):
                first = exc.errors()[0]
                reason = f"plan.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            raise ChainImportError(f"{where}: {reason}", hint=hint) from exc
    return found


def _parse_version(item: Any) -> SavedChain:
    if not isinstance(item, Mapping):
        raise TypeError("a version is a JSON object")
    missing = [key for key in ("name", "version", "inputs", "plan") if key not in item]
    if missing:
        raise KeyError(f"missing {', '.join(missing)}")
    ref = parse_ref(str(item["name"]))
    plan = Plan.model_validate(item["plan"])
    inputs = item["inputs"]
    if not isinstance(inputs, Mapping):
        raise TypeError("inputs is a JSON Schema object")
    Draft202012Validator.check_schema(dict(inputs))
    dumped = plan.model_dump(mode="json")
    version = chain_version(dumped, inputs)
    if item["version"] != version:
        raise ValueError(f"version {item['version']!r} does not match its content ({version}): was it edited?")
    tools = item.get("tools") or {}
    chains = [s.target.removeprefix(CHAIN_PREFIX) for s in plan.steps if s.target.startswith(CHAIN_PREFIX)]
    effect = item.get("effect", "destructive")
    if effect not in ("read_only", "writes", "destructive") or not isinstance(tools, Mapping):
        raise ValueError("effect is read_only, writes or destructive; tools maps tool ids to fingerprints")
    estimate = item.get("estimated_latency_ms")
    return SavedChain(
        name=ref.name,
        version=version,
        description=str(item.get("description") or ""),
        inputs_schema=dict(inputs),
        plan=dumped,
        tools={str(k): str(v) for k, v in tools.items()},
        chains=tuple(dict.fromkeys(chains)),
        estimated_latency_ms=float(estimate) if isinstance(estimate, int | float) else None,
        effect=effect,
        created_at=str(item.get("created_at") or ""),
    )


async def import_chains(chains: ChainStore, versions: Sequence[SavedChain]) -> list[str]:
    """Store imported versions, oldest first (saving one again is a no-op); what happened to each.

    Raises:
        ChainImportError: a version would make a chain reach itself.
        StoreError: the store cannot be used.
    """
    newest = {c.name: c for c in await chains.newest()} | {v.name: v for v in versions}
    for version in versions:
        todo, seen = list(version.chains), set()
        while todo:
            name = todo.pop().partition("@")[0]
            if name == version.name:
                raise ChainImportError(f"chain {version.name}@{version.version} would run itself through its steps")
            if name not in seen and (sub := newest.get(name)) is not None:
                seen.add(name)
                todo += sub.chains
    return [f"{v.name}@{v.version}: {await chains.save(v)}" for v in versions]
