"""JSON Schema helpers shared by the planner, discovery and learned output shapes: ``$ref`` resolution, the
types a schema allows and the type of a value. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from mcp_conductor.clip import clip

MAX_REF_HOPS = 32  # "$ref" chains followed before giving up


def schema_types(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """The JSON types a schema allows, from ``type``, ``const``/``enum`` or its shape; ``()`` when unknown."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return (declared,)
    if isinstance(declared, list):
        return tuple(str(t) for t in declared)
    if "const" in schema:
        return (value_type(schema["const"]),)
    if isinstance(schema.get("enum"), list):
        return tuple(dict.fromkeys(value_type(v) for v in schema["enum"]))
    if "properties" in schema:
        return ("object",)
    if "items" in schema or "prefixItems" in schema:
        return ("array",)
    return ()


def value_type(value: Any) -> str:
    """The JSON Schema type name of a Python value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list | tuple) else "object"


def deref(root: Mapping[str, Any], schema: Any) -> Mapping[str, Any] | None:
    """``schema`` with its ``$ref`` chain followed (``referencing`` resolves them against ``root``); None for a
    boolean schema, garbage, a reference that does not resolve offline, or a chain longer than ``MAX_REF_HOPS``."""
    resolver: Any = None  # referencing's Resolver, made on the first $ref
    for _ in range(MAX_REF_HOPS):
        if not isinstance(schema, Mapping):
            return None  # a boolean schema or garbage: nothing to learn from it
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return _single_branch(root, schema)
        if resolver is None:
            try:
                resource = Resource.from_contents(root, default_specification=DRAFT202012)
            except Exception:  # a root that is not a schema at all
                return None
            resolver = Registry().resolver_with_root(resource)
        try:
            resolved = resolver.lookup(ref)
        except Unresolvable:  # a remote reference (never fetched) or a pointer to nowhere
            return None
        schema, resolver = resolved.contents, resolved.resolver
    return None


def _single_branch(root: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    # Optional fields come out of pydantic as anyOf [X, {"type": "null"}]: follow X.
    if "properties" in schema or "items" in schema or "prefixItems" in schema:
        return schema
    for keyword in ("anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list):
            real = [b for b in branches if not (isinstance(b, Mapping) and b.get("type") == "null")]
            return deref(root, real[0]) if len(real) == 1 else schema
    return schema


_NOISE = frozenset({"$schema", "$id", "$comment", "title", "examples"})
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
DETAIL = "x-detail"  # marks a result field that a compact answer leaves out (see ``compact_schema``)


def compact_schema(schema: Any) -> Any:
    """``schema`` as a model should read it: without ``$schema``, ``$id``, ``$comment``, ``title``, ``examples``,
    ``additionalProperties`` (plan_chain checks arguments against the full schema anyway), the model-level
    descriptions of ``$defs`` entries, ``default: null``, and the ``null`` branch of an optional field's
    ``anyOf``; without properties marked ``x-detail`` (shown only on request) and the ``$defs`` nothing uses."""
    compact = _compact(schema)
    if isinstance(compact, dict) and isinstance(compact.get("$defs"), dict):
        defs = compact["$defs"]
        used: set[str] = set()
        _collect_refs({k: v for k, v in compact.items() if k != "$defs"}, used)
        frontier = list(used)
        while frontier:
            name = frontier.pop()
            found: set[str] = set()
            _collect_refs(defs.get(name, {}), found)
            frontier += [n for n in found - used]
            used |= found
        counts: dict[str, int] = {}
        _count_refs(compact, counts)
        kept = {name: sub for name, sub in defs.items() if name in used}
        once = {name: sub for name, sub in kept.items() if counts.get(name) == 1 and not _refers(sub, name)}
        compact = _inline(compact, once)
        compact["$defs"] = {name: sub for name, sub in kept.items() if name not in once}
        if not compact["$defs"]:
            del compact["$defs"]
    return compact


def _count_refs(schema: Any, counts: dict[str, int]) -> None:
    if isinstance(schema, Mapping):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            counts[name] = counts.get(name, 0) + 1
        for value in schema.values():
            _count_refs(value, counts)
    elif isinstance(schema, list):
        for item in schema:
            _count_refs(item, counts)


def _refers(schema: Any, name: str) -> bool:
    found: set[str] = set()
    _collect_refs(schema, found)
    return name in found


def _inline(schema: Any, defs: Mapping[str, Any]) -> Any:
    """Replace each ``{"$ref": "#/$defs/NAME"}`` of a def used once by the def itself."""
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.removeprefix("#/$defs/") in defs and ref.startswith("#/$defs/"):
        rest = {k: _inline(v, defs) for k, v in schema.items() if k != "$ref"}
        return {**_inline(defs[ref.removeprefix("#/$defs/")], defs), **rest}
    return {k: (v if k == "$defs" else _inline(v, defs)) for k, v in schema.items()}


def _compact(schema: Any, *, in_defs: bool = False) -> Any:
    if isinstance(schema, list):
        return [_compact(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    branches = schema.get("anyOf")
    if (
        isinstance(branches, list)
        and len(branches) == 2
        and {"type": "null"} in branches
        and schema.get("default", ...) in (None, ...)
    ):
        (real,) = [b for b in branches if b != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return _compact({**real, **rest})
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if (
            key in _NOISE
            or (key == "additionalProperties" and isinstance(value, bool))
            or (key == "default" and value is None)
        ):
            continue
        if key == "description" and in_defs and "properties" in schema:
            continue
        if key in _NAME_MAPS and isinstance(value, Mapping):
            subs = {
                name: _compact(sub, in_defs=key in ("$defs", "definitions"))
                for name, sub in value.items()
                if not (key == "properties" and isinstance(sub, Mapping) and sub.get(DETAIL))
            }
            out[key] = subs
        else:
            out[key] = _compact(value)
    if isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
        out["required"] = [name for name in out["required"] if name in out["properties"]]
        if not out["required"]:
            del out["required"]
    return out


def _collect_refs(schema: Any, found: set[str]) -> None:
    if isinstance(schema, Mapping):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            found.add(ref.removeprefix("#/$defs/"))
        for value in schema.values():
            _collect_refs(value, found)
    elif isinstance(schema, list):
        for item in schema:
            _collect_refs(item, found)


PARAMETER_DESCRIPTION_CHARS = 100


def lean_input_schema(schema: Any) -> Any:
    """A tool's input schema as ``discover_tools`` shows it by default: ``compact_schema`` without the implied
    ``"type": "object"`` at the top, each parameter's description cut at ``PARAMETER_DESCRIPTION_CHARS``."""
    compact = compact_schema(schema)
    if not isinstance(compact, dict):
        return compact
    if compact.get("type") == "object":
        del compact["type"]
    properties = compact.get("properties")
    if isinstance(properties, dict):
        for prop in properties.values():
            if isinstance(prop, dict) and isinstance(prop.get("description"), str):
                prop["description"] = clip(prop["description"], PARAMETER_DESCRIPTION_CHARS)
    return compact


def without_descriptions(schema: Any) -> Any:
    """``schema`` without ``description`` keywords (a property named "description" stays): for output schemas,
    whose fields the tool's own description already explains."""
    if isinstance(schema, list):
        return [without_descriptions(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in _NAME_MAPS and isinstance(value, Mapping):
            out[key] = {name: without_descriptions(sub) for name, sub in value.items()}
        else:
            out[key] = without_descriptions(value)
    return out
