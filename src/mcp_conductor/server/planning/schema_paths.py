"""What a JSON Schema says lives at a path: used to check references into a tool's ``outputSchema``.

``lookup_schema`` walks ``properties`` / ``items`` / ``prefixItems``, ``$ref`` (resolved with ``referencing``)
and a single non-null branch of ``anyOf``/``oneOf``, telling where a path leaves what the schema declares. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcp_conductor.schemas import deref, schema_types
from mcp_conductor.server.planning.references import PathSegment, as_index


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
    current: Mapping[str, Any] | None = deref(schema, schema)
    for index, seg in enumerate(path):
        if current is None:
            return SchemaLookup(None)
        types = schema_types(current)
        position = as_index(seg)
        is_array = "array" in types or "items" in current or "prefixItems" in current
        if isinstance(seg, str) and not (seg.isdigit() and is_array and "properties" not in current):
            properties = current.get("properties")
            if isinstance(properties, Mapping) and seg in properties:
                current = deref(schema, properties[seg])
                continue
            patterns = current.get("patternProperties")
            if isinstance(patterns, Mapping):
                matched = [sub for pattern, sub in patterns.items() if _search(pattern, seg)]
                if matched:
                    current = deref(schema, matched[0])
                    continue
            extra = current.get("additionalProperties")
            if isinstance(extra, Mapping):
                current = deref(schema, extra)
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
            current = deref(schema, prefix[position])
        elif isinstance(items, Mapping):
            current = deref(schema, items)
        elif items is False or (types and "array" not in types):
            return SchemaLookup(None, index)
        else:
            return SchemaLookup(None)
    return SchemaLookup(current)


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False
