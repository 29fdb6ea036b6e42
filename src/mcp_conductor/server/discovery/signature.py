"""A tool's input schema as one short line, the way a typed function reads: ``path: string, head?: number``.

``discover_tools`` shows the full (lean) input schema for its first hits and this signature for the rest: the
names, types, which arguments are optional (``?``), enums (``"a"|"b"``), arrays (``string[]``) and nested
objects (``{name: string, tags?: string[]}``) are what a model needs to write a step's arguments; parameter
descriptions are left out (the full schema, ``detail="full"``, has them). Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcp_conductor.schemas import compact_schema

MAX_DEPTH = 3
MAX_ENUM = 6


def signature(schema: Any) -> str:
    """``schema`` (a tool's input schema) as ``name: type`` pairs, optional ones marked ``?``; "" for none."""
    compact = compact_schema(schema)
    if not isinstance(compact, Mapping):
        return ""
    return _fields(compact, compact, 0)


def _fields(root: Mapping[str, Any], schema: Mapping[str, Any], depth: int) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return ""
    required = schema.get("required")
    needed = set(required) if isinstance(required, list) else set()
    return ", ".join(
        f"{name}{'' if name in needed else '?'}: {_type(root, spec, depth)}" for name, spec in properties.items()
    )


def _type(root: Mapping[str, Any], schema: Any, depth: int) -> str:
    if not isinstance(schema, Mapping):
        return "any"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rpartition("/")[2] or "any"
    if isinstance(schema.get("enum"), list):
        values = schema["enum"]
        shown = "|".join(json.dumps(v, ensure_ascii=False) for v in values[:MAX_ENUM])
        return shown + ("|..." if len(values) > MAX_ENUM else "")
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    for keyword in ("anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list) and branches:
            return "|".join(dict.fromkeys(_type(root, b, depth) for b in branches))
    declared = schema.get("type")
    if isinstance(declared, list):
        return "|".join(str(t) for t in declared)
    if declared == "array" or "items" in schema:
        item = _type(root, schema.get("items"), depth) if "items" in schema else "any"
        return f"({item})[]" if "|" in item else f"{item}[]"
    if declared == "object" or "properties" in schema:
        if depth >= MAX_DEPTH or not isinstance(schema.get("properties"), Mapping):
            return "object"
        return "{" + _fields(root, schema, depth + 1) + "}"
    return str(declared) if isinstance(declared, str) else "any"
