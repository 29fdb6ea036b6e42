"""Saved chains, the pure part: names, ``name@version`` references, versions, inputs schemas and staleness.

A saved chain is a valid plan kept under a name (``plan_chain``'s ``save_as``). Its version is a content hash of
the normalized plan and its inputs schema, so saving the same plan again is a no-op and saving a changed one makes
a new version while the old stays runnable as ``name@version``. A plan step uses one as ``"tool": "chain/NAME"``
(the newest version) or ``"chain/NAME@VERSION"``; to the planner it looks like a tool whose ``inputSchema`` is
the chain's inputs schema and whose value is the object of the chain's outputs. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from mcp_conductor.client_pool.catalog import CatalogSnapshot, ToolId, ToolInfo
from mcp_conductor.client_pool.consent_policy import ConsentPolicy, Effect
from mcp_conductor.errors import ConductorError
from mcp_conductor.server.planning.models import Plan, PlanIssue

CHAIN_SERVER = "chain"
CHAIN_PREFIX = CHAIN_SERVER + "/"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,63}")
VERSION_PATTERN = re.compile(r"[0-9a-f]{8}")
NAME_RULE = "a chain name starts with a lowercase letter and holds only a-z, 0-9, '_' and '-' (at most 64)"


class ChainRefError(ConductorError):
    """A chain reference that is not ``NAME`` or ``NAME@VERSION``."""

    kind = "invalid_chain_name"


class SaveAs(BaseModel):
    """``plan_chain``'s ``save_as``: the name, a description (indexed by ``discover_tools``) and the JSON Schema
    of the inputs a caller may give (default: every plan input, optional, typed by its default value)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = Field("", max_length=4000)
    inputs: dict[str, JsonValue] | None = None


@dataclass(frozen=True, slots=True)
class ChainRef:
    name: str
    version: str | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"

    @property
    def tool_id(self) -> str:
        return CHAIN_PREFIX + str(self)


def parse_ref(text: str) -> ChainRef:
    """``notes``, ``notes@1a2b3c4d``, ``chain/notes`` or ``chain/notes@1a2b3c4d``.

    Raises:
        ChainRefError: it is none of these.
    """
    name, _, version = text.removeprefix(CHAIN_PREFIX).partition("@")
    if not NAME_PATTERN.fullmatch(name):
        raise ChainRefError(f"{text!r} is not a chain name: {NAME_RULE}", hint="e.g. notes-to-memory")
    if version and not VERSION_PATTERN.fullmatch(version):
        raise ChainRefError(f"{text!r}: a version is 8 hex digits", hint="`mcp-conductor chains show NAME` lists them")
    return ChainRef(name, version or None)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(schema: Mapping[str, Any]) -> str:
    """16 hex digits of the SHA-256 of a schema's canonical JSON: what staleness compares."""
    return hashlib.sha256(canonical(schema).encode()).hexdigest()[:16]


def chain_version(plan: Mapping[str, Any], inputs_schema: Mapping[str, Any]) -> str:
    """The version of a normalized plan (its JSON dump) with its inputs schema: 8 hex digits of a SHA-256."""
    return hashlib.sha256(canonical({"plan": plan, "inputs": inputs_schema}).encode()).hexdigest()[:8]


_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"))


def default_inputs_schema(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Every plan input as an optional property typed by its default value."""
    properties: dict[str, Any] = {}
    for name, value in inputs.items():
        kind = next(
            (t for cls, t in _JSON_TYPES if isinstance(value, cls)), "object" if isinstance(value, dict) else None
        )
        properties[name] = {"type": kind} if kind else {}
    return {"type": "object", "properties": properties, "additionalProperties": False}


def check_save(plan: Plan, save_as: SaveAs) -> tuple[dict[str, Any], list[PlanIssue]]:
    """The inputs schema to save (given or derived), and what is wrong with ``save_as`` for this plan."""
    issues: list[PlanIssue] = []

    def issue(where: str, message: str, hint: str, kind: str = "invalid_save_as") -> None:
        issues.append(PlanIssue(field="/save_as" + where, kind=kind, message=message, hint=hint))

    if not NAME_PATTERN.fullmatch(save_as.name):
        issue(
            "/name", f"{save_as.name!r} is not a chain name: {NAME_RULE}", "e.g. notes-to-memory", "invalid_chain_name"
        )
    schema = dict(save_as.inputs) if save_as.inputs is not None else default_inputs_schema(plan.inputs)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        issue("/inputs", f"inputs is not a valid JSON Schema: {exc.message}", 'e.g. {"type": "object", ...}')
        return schema, issues
    if schema.get("type", "object") != "object":
        issue("/inputs/type", "the inputs schema describes an object (the inputs by name)", 'use "type": "object"')
    properties = schema.get("properties") or {}
    for name in properties if isinstance(properties, Mapping) else ():
        if name not in plan.inputs:
            hint = (
                f"declare {name!r} under the plan's inputs with a default; it has: {', '.join(plan.inputs) or 'none'}"
            )
            issue(f"/inputs/properties/{name}", f"input {name!r} is not one the plan declares", hint)
    # "required" binds callers; the plan's own defaults always fill every input, so only their values are checked
    defaults = [e for e in Draft202012Validator(schema).iter_errors(dict(plan.inputs)) if e.validator != "required"]
    for error in defaults[:5]:
        where = "/".join(str(p) for p in error.absolute_path)
        issue(
            "/inputs",
            f"the plan's default input {where or 'value'} does not fit the schema: {error.message}",
            "fix one",
        )
    return schema, issues


def check_inputs(schema: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """What is wrong with the inputs a caller gives a saved chain (empty: fine)."""
    found = []
    for error in sorted(Draft202012Validator(dict(schema)).iter_errors(dict(given)), key=lambda e: list(e.path)):
        where = "/".join(str(p) for p in error.absolute_path)
        found.append(f"inputs{'.' + where.replace('/', '.') if where else ''}: {error.message}")
    return found


def plan_uses(plan: Plan, snapshot: CatalogSnapshot) -> tuple[dict[str, str], tuple[str, ...]]:
    """The downstream tools a normalized plan calls (with their inputSchema fingerprints) and the chain
    references its steps use."""
    tools: dict[str, str] = {}
    chains: list[str] = []
    for step in plan.steps:
        if step.is_data:
            continue
        target = step.target
        if target.startswith(CHAIN_PREFIX):
            chains.append(target.removeprefix(CHAIN_PREFIX))
        elif (tool := snapshot.tools.get(ToolId(target))) is not None:
            tools[target] = fingerprint(tool.input_schema)
    return tools, tuple(dict.fromkeys(chains))


def plan_effect(plan: Plan, snapshot: CatalogSnapshot, policy: ConsentPolicy, chains: Mapping[str, ToolInfo]) -> Effect:
    """The worst effect of a plan's steps; a step that would need the person's consent counts as destructive,
    so a step using the chain asks for consent whenever running its steps directly would."""
    worst: Effect = "read_only"
    rank = {"read_only": 0, "writes": 1, "destructive": 2}
    for step in plan.steps:
        if step.is_data:
            continue
        tool = chains.get(step.target) or snapshot.tools.get(ToolId(step.target))
        effect: Effect = "destructive" if tool is None else policy.effect(tool)
        if tool is not None and tool.server != CHAIN_SERVER and policy.reason(tool.id, effect) is not None:
            effect = "destructive"
        if rank[effect] > rank[worst]:
            worst = effect
    return worst


@dataclass(frozen=True, slots=True)
class ChainTool:
    """A saved chain as the planner sees a tool: its ``ToolInfo`` (id ``chain/NAME[@VERSION]``), its latency
    estimate from its save, and the chain names its steps reach, directly or through other chains (the chain's own
    name only if it recurses)."""

    info: ToolInfo
    name: str
    estimate_ms: float | None = None
    reaches: frozenset[str] = frozenset()


def recursion_issues(plan: Plan, chains: Mapping[str, ChainTool], saving: str | None) -> list[PlanIssue]:
    """Steps whose chain is or reaches the chain being saved (``saving``), or reaches itself: no recursion."""
    issues = []
    for index, step in enumerate(plan.steps):
        found = None if step.is_data else chains.get(step.target)
        if found is None:
            continue
        if saving is not None and saving in {found.name, *found.reaches}:
            how = "is" if found.name == saving else f"reaches chain/{saving} through"
            message = f"{step.target} {how} the chain being saved as {saving!r}: a chain cannot run itself"
        elif found.name in found.reaches:
            message = f"{step.target} reaches itself through its own steps: a chain cannot run itself"
        else:
            continue
        hint = "put the steps in the plan directly instead of calling the chain from itself"
        where = f"/steps/{index}/tool"
        issues.append(PlanIssue(step=step.id, field=where, kind="chain_recursion", message=message, hint=hint))
    return issues
