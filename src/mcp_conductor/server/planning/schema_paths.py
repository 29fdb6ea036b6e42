"""What a JSON Schema says lives at a path: used to check references into a tool's ``outputSchema``.

``lookup_schema`` walks ``properties`` / ``items`` / ``prefixItems``, ``$ref`` (resolved with ``referencing``)
and a single non-null branch of ``anyOf``/``oneOf``, telling where a path leaves what the schema declares. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from mcp_conductor.server.planning.references import PathSegment, as_index

_MAX_REF_HOPS = 32  # "$ref" chains followed by lookup_schema before giving up


@dataclass(frozen=True, slots=True)
class SchemaLookup:
    """Where a path leads in a JSON Schema.

    ``schema`` is the subschema at the path when it can be known; ``missing_at`` is the index of the first
    segment the schema rules out (then ``offered`` lists the property names that were possible there).
    """

    schema: Mapping[str, Any] | None
    missing_at: int | None = None
    offered: tuple[str, ...] = ()


def lookup_schema(schema: Mapping[str, Any], path: Sequence[PathSegment]) -> SchemaLookup:
    """Follow ``path`` through ``properties`` / ``patternProperties`` / ``additionalProperties``, ``items`` /
    ``prefixItems``, ``$ref`` (resolved with ``referencing``) and an ``anyOf``/``oneOf`` with one non-null branch.

    Declared ``properties`` are trusted: a key not among them (and not matched by a pattern or an
    ``additionalProperties`` schema) is reported missing, so typos are caught before the chain runs.
    What the walk cannot follow (other combinators, remote refs) gives ``schema=None``: unknown, not wrong.
    """
    current: Mapping[str, Any] | None = _deref(schema, schema)
    for index, seg in enumerate(path):
        if current is None:
            return SchemaLookup(None)
        types = schema_types(current)
        position = as_index(seg)
        is_array = "array" in types or "items" in current or "prefixItems" in current
        if isinstance(seg, str) and not (seg.isdigit() and is_array and "properties" not in current):
            properties = current.get("properties")
            if isinstance(properties, Mapping) and seg in properties:
                current = _deref(schema, properties[seg])
                continue
            patterns = current.get("patternProperties")
            if isinstance(patterns, Mapping):
                matched = [sub for pattern, sub in patterns.items() if _search(pattern, seg)]
                if matched:
                    current = _deref(schema, matched[0])
                    continue
            extra = current.get("additionalProperties")
            if isinstance(extra, Mapping):
                current = _deref(schema, extra)
                continue
            if isinstance(properties, Mapping) and extra is not True:
                return SchemaLookup(None, index, tuple(str(k) for k in properties))
            if types and "object" not in types:
                return SchemaLookup(None, index)
            return SchemaLookup(None)
        assert position is not None  # an int, or a digit key on an array
        prefix = current.get("prefixItems")
        items = current.get("items")
        if isinstance(prefix, list) and position < len(prefix):
            current = _deref(schema, prefix[position])
        elif isinstance(items, Mapping):
            current = _deref(schema, items)
        elif items is False or (types and "array" not in types):
            return SchemaLookup(None, index)
        else:
            return SchemaLookup(None)
    return SchemaLookup(current)


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


def _deref(root: Mapping[str, Any], schema: Any) -> Mapping[str, Any] | None:
    """``schema`` with its ``$ref`` chain followed (``referencing`` resolves them against ``root``); None for a
    boolean schema, garbage, a reference that does not resolve offline, or a chain longer than ``_MAX_REF_HOPS``."""
    resolver: Any = None  # referencing's Resolver, made on the first $ref
    for _ in range(_MAX_REF_HOPS):
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
            return _deref(root, real[0]) if len(real) == 1 else schema
    return schema


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False
