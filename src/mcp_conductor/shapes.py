"""Shapes: what a step's value looks like, as JSON types and keys, never values.

A shape is itself JSON: a type name (``"string"``, ``"integer"``, ``"number"``, ``"boolean"``, ``"null"``,
``"any"``), several joined by ``|`` (``"string|null"``), a one-element list for an array (``["string"]``), or an
object of shapes (``{"path": "string", "size": "integer"}``). ``discover_tools`` shows a tool's shape as
``returns``; it comes from the tool's ``outputSchema`` (``schema_shape``) or, for a tool without one, is learned
from the values of its successful calls (``value_shape``, merged over calls with ``merge_shapes``), and the
planner checks ``${steps.x.path}`` references against it (``shape_schema`` turns it back into a JSON Schema).

Shapes stay small: objects show at most ``MAX_KEYS`` keys and nesting stops at ``MAX_DEPTH``. Pure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcp_conductor.schemas import deref, schema_types, value_type

Shape = Any  # str | list[Shape] | dict[str, Shape]

MAX_DEPTH = 4
MAX_KEYS = 16
MAX_UNION = 4
MORE = "..."  # the key that stands for the keys left out of a big object


def value_shape(value: Any, depth: int = 0) -> Shape:
    """The shape of a JSON value."""
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return "object"
        keys = list(value)
        shape = {str(k): value_shape(value[k], depth + 1) for k in keys[:MAX_KEYS]}
        if len(keys) > MAX_KEYS:
            shape[MORE] = f"{len(keys) - MAX_KEYS} more keys"
        return shape
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return "array"
        element: Shape = None
        for item in value[:50]:  # enough to see the variants; a long list is sampled
            item_shape = value_shape(item, depth + 1)
            element = item_shape if element is None else merge_shapes(element, item_shape)
        return [element if element is not None else "any"]
    return value_type(value)


def merge_shapes(a: Shape, b: Shape) -> Shape:
    """One shape that covers both (object keys united, element shapes merged, other kinds joined by ``|``)."""
    if a == b:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        merged = dict(a)
        for key, shape in b.items():
            if key == MORE:
                merged.setdefault(MORE, shape)
            else:
                merged[key] = merge_shapes(merged[key], shape) if key in merged else shape
        extra = [k for k in merged if k != MORE][MAX_KEYS:]
        for key in extra:
            del merged[key]
        return merged
    if isinstance(a, list) and isinstance(b, list):
        return [merge_shapes(a[0], b[0]) if a and b else (a or b)[0] if (a or b) else "any"]
    names = sorted({*_names(a), *_names(b)} - {"any"} or {"any"})
    return "|".join(names[:MAX_UNION]) if len(names) <= MAX_UNION else "any"


def _names(shape: Shape) -> list[str]:
    if isinstance(shape, dict):
        return ["object"]
    if isinstance(shape, list):
        return ["array"]
    return str(shape).split("|")


def schema_shape(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, depth: int = 0) -> Shape:
    """The shape a JSON Schema describes (``$ref`` resolved, a nullable ``anyOf`` kept as ``|null``)."""
    root = root if root is not None else schema
    for keyword in ("anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list) and branches:
            shapes = [schema_shape(b, root, depth) for b in branches if isinstance(b, Mapping)]
            merged: Shape = shapes[0] if shapes else "any"
            for shape in shapes[1:]:
                merged = merge_shapes(merged, shape)
            return merged
    resolved = deref(root, schema) if "$ref" in schema else schema
    if resolved is None:
        return "any"
    if depth >= MAX_DEPTH:
        return "|".join(schema_types(resolved)) or "any"
    properties = resolved.get("properties")
    if isinstance(properties, Mapping) and properties:
        keys = list(properties)
        shape = {
            str(k): schema_shape(v, root, depth + 1) if isinstance(v, Mapping) else "any" for k, v in properties.items()
        }
        shape = dict(list(shape.items())[:MAX_KEYS])
        if len(keys) > MAX_KEYS:
            shape[MORE] = f"{len(keys) - MAX_KEYS} more keys"
        return shape
    items = resolved.get("items")
    if isinstance(items, Mapping):
        return [schema_shape(items, root, depth + 1)]
    types = schema_types(resolved)
    if "array" in types and len(types) == 1:
        return ["any"]
    return "|".join(types) or "any"


def shape_schema(shape: Shape) -> dict[str, Any]:
    """A JSON Schema that admits values of ``shape``; objects list their keys (so a missing key is a finding)
    unless the shape was cut (``MORE``), in which case other keys are allowed."""
    if isinstance(shape, dict):
        properties = {k: shape_schema(v) for k, v in shape.items() if k != MORE}
        out: dict[str, Any] = {"type": "object", "properties": properties}
        if MORE not in shape:
            out["additionalProperties"] = False
        return out
    if isinstance(shape, list):
        return {"type": "array", "items": shape_schema(shape[0]) if shape else {}}
    names = [n for n in str(shape).split("|") if n not in ("any", "object", "array")]
    if not names or names != str(shape).split("|"):
        return {}
    return {"type": names[0] if len(names) == 1 else names}


def shape_text(shape: Shape) -> str:
    """A shape as compact JSON text (for messages)."""
    return json.dumps(shape, separators=(",", ":"))
