"""``${steps.ID.path}`` and ``${inputs.NAME}`` references: parsing, finding, substitution, schema lookup.

Grammar of a string argument (anything else is literal text)::

    $${                      a literal "${"
    ${steps.ID<path>}        the value of step ID (the planner also accepts CHAIN_RESULT and rewrites it)
    ${inputs.NAME<path>}     the plan input NAME
    <path>                   any of  .key  [0]  ["any key"]   (key: letters, digits, _ and -)

A string that is exactly one reference takes the referenced value with its JSON type; a reference inside a
longer string is interpolated as text (strings as they are, anything else as JSON). Dict keys are never
expanded, and values taken from step outputs are data: they are not parsed again.

Everything here is pure; the planner uses it to check plans and the executor to build each step's arguments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mcp_conductor.errors import ConductorError

Source = Literal["steps", "inputs"]
PathSegment = str | int
JsonPath = tuple[PathSegment, ...]

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"(\d+)\]")
_DECODER = json.JSONDecoder()
_MAX_REF_HOPS = 32  # "$ref" chains followed by lookup_schema before giving up


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``${source.name<path>}`` reference."""

    source: Source
    name: str
    path: JsonPath = ()

    def __str__(self) -> str:
        return "${" + f"{self.source}.{self.name}{format_path(self.path)}" + "}"


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A reference and where it sits in its string (``text[start:end]``)."""

    reference: Reference
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed string: literal text (escapes already undone) and placeholders, in order."""

    text: str
    parts: tuple[str | Placeholder, ...]

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        return tuple(p for p in self.parts if isinstance(p, Placeholder))

    @property
    def exact(self) -> Reference | None:
        """The reference when the whole string is exactly one reference (typed substitution)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Placeholder):
            return self.parts[0].reference
        return None


class ReferenceSyntaxError(ConductorError):
    """A malformed ``${...}`` in a string argument."""

    kind = "bad_reference"

    def __init__(self, text: str, position: int, problem: str) -> None:
        super().__init__(
            f"{problem} at position {position} of {text!r}",
            hint='write ${steps.ID.key[0]} or ${inputs.NAME}; keys with other characters as ["a key"]; '
            "a literal '${' as '$${'",
        )
        self.text = text
        self.position = position


class ReferenceResolutionError(ConductorError):
    """A reference whose step, input or path does not exist when the chain runs."""

    kind = "bad_reference_path"

    def __init__(self, reference: Reference, message: str) -> None:
        super().__init__(message, hint="check the referenced step's actual output (its structuredContent)")
        self.reference = reference

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"reference": str(self.reference)}


def format_path(path: Sequence[PathSegment]) -> str:
    """``("a", 0, "b c")`` -> ``.a[0]["b c"]``: the path as written in a reference."""
    out: list[str] = []
    for seg in path:
        if isinstance(seg, int):
            out.append(f"[{seg}]")
        elif NAME_PATTERN.fullmatch(seg):
            out.append(f".{seg}")
        else:
            out.append(f"[{json.dumps(seg, ensure_ascii=False)}]")
    return "".join(out)


def json_pointer(path: Sequence[PathSegment]) -> str:
    """RFC 6901 pointer of a path: ``("steps", 2, "a/b")`` -> ``/steps/2/a~1b``."""
    return "".join("/" + str(seg).replace("~", "~0").replace("/", "~1") for seg in path)


def parse_template(text: str) -> Template:
    """Split a string into literal text and references.

    Raises:
        ReferenceSyntaxError: a ``${`` that does not start a well-formed reference (e.g. unclosed).
    """
    if "$" not in text:
        return Template(text, (text,) if text else ())
    parts: list[str | Placeholder] = []
    literal: list[str] = []
    i = 0
    while (j := text.find("$", i)) >= 0:
        literal.append(text[i:j])
        if text.startswith("$${", j):
            literal.append("${")
            i = j + 3
        elif text.startswith("${", j):
            reference, i = _parse_reference(text, j)
            if chunk := "".join(literal):
                parts.append(chunk)
            literal = []
            parts.append(Placeholder(reference, j, i))
        else:
            literal.append("$")
            i = j + 1
    literal.append(text[i:])
    if chunk := "".join(literal):
        parts.append(chunk)
    return Template(text, tuple(parts))


def _parse_reference(text: str, start: int) -> tuple[Reference, int]:
    i = start + 2
    match = NAME_PATTERN.match(text, i)
    if match is None or match.group() not in ("steps", "inputs"):
        raise ReferenceSyntaxError(text, i, "expected 'steps.' or 'inputs.' after '${'")
    source: Source = "steps" if match.group() == "steps" else "inputs"
    i = match.end()
    match = NAME_PATTERN.match(text, i + 1) if text.startswith(".", i) else None
    if match is None:
        what = "a step id" if source == "steps" else "an input name"
        raise ReferenceSyntaxError(text, i, f"expected '.' and {what} after '${{{source}'")
    name = match.group()
    i = match.end()
    path: list[PathSegment] = []
    while i < len(text):
        char = text[i]
        if char == "}":
            return Reference(source, name, tuple(path)), i + 1
        if char == "." and (match := NAME_PATTERN.match(text, i + 1)):
            path.append(match.group())
            i = match.end()
        elif char == "[" and (match := _INDEX.match(text, i + 1)):
            path.append(int(match.group(1)))
            i = match.end()
        elif char == "[" and text.startswith('"', i + 1):
            try:
                key, end = _DECODER.raw_decode(text, i + 1)
            except ValueError:
                raise ReferenceSyntaxError(text, i + 1, "unterminated quoted key") from None
            if not text.startswith("]", end):
                raise ReferenceSyntaxError(text, end, "expected ']' after a quoted key")
            path.append(key)
            i = end + 1
        else:
            raise ReferenceSyntaxError(text, i, f"unexpected {char!r} in a reference")
    raise ReferenceSyntaxError(text, start, "unclosed reference (no '}')")


def iter_strings(value: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, str]]:
    """Every string value in a nested structure of dicts and lists, with its path (keys are skipped)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_strings(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from iter_strings(item, (*path, index))


def find_references(arguments: Any) -> list[tuple[str, Reference]]:
    """Every reference in a nested structure, as ``(json_pointer, reference)`` in document order.

    Raises:
        ReferenceSyntaxError: some string holds a malformed reference.
    """
    return [
        (json_pointer(path), placeholder.reference)
        for path, text in iter_strings(arguments)
        if "$" in text
        for placeholder in parse_template(text).placeholders
    ]


def substitute(arguments: Any, steps: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """A copy of ``arguments`` with every reference replaced by its value.

    Exact references keep the value's JSON type; interpolated ones become text. Referenced values are shared,
    not copied: treat the result as read-only.

    Raises:
        ReferenceSyntaxError: a malformed reference (the planner rejects these earlier).
        ReferenceResolutionError: a referenced step, input or path does not exist.
    """
    if isinstance(arguments, str):
        return render(parse_template(arguments), steps, inputs) if "$" in arguments else arguments
    if isinstance(arguments, Mapping):
        return {key: substitute(item, steps, inputs) for key, item in arguments.items()}
    if isinstance(arguments, list | tuple):
        return [substitute(item, steps, inputs) for item in arguments]
    return arguments


def render(template: Template, steps: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """The value of one parsed string (see :func:`substitute`)."""
    exact = template.exact
    if exact is not None:
        return resolve(exact, steps, inputs)
    out: list[str] = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
        else:
            value = resolve(part.reference, steps, inputs)
            out.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    return "".join(out)


def resolve(reference: Reference, steps: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """The value a reference points at.

    Raises:
        ReferenceResolutionError: the step has no value, the input is missing, or the path does not exist.
    """
    root = steps if reference.source == "steps" else inputs
    if reference.name not in root:
        what = f"step {reference.name!r} has no value" if reference.source == "steps" else "no such input"
        raise ReferenceResolutionError(reference, f"{reference}: {what}")
    value, missing_at = follow_path(root[reference.name], reference.path)
    if missing_at is not None:
        owner = f"the output of step {reference.name!r}" if reference.source == "steps" else "the input"
        seg = reference.path[missing_at]
        what = (
            f"key {seg!r}" if isinstance(seg, str) and not isinstance(value, list | tuple) else f"item {seg}"
        )
        at = format_path(reference.path[:missing_at]) or "the top"
        raise ReferenceResolutionError(
            reference, f"{reference}: {owner} has no {what} at {at} (there it is {_json_type(value)})"
        )
    return value


def follow_path(value: Any, path: Sequence[PathSegment]) -> tuple[Any, int | None]:
    """Walk ``path`` into a value: ``(found, None)``, or ``(last value reached, index of the missing part)``.

    A key made of digits (``.0``) also indexes a list, as people often write it that way.
    """
    for index, seg in enumerate(path):
        if isinstance(value, Mapping) and isinstance(seg, str) and seg in value:
            value = value[seg]
        elif isinstance(value, list | tuple) and (position := _as_index(seg)) is not None:
            if position >= len(value):
                return value, index
            value = value[position]
        else:
            return value, index
    return value, None


def _as_index(seg: PathSegment) -> int | None:
    if isinstance(seg, int):
        return seg
    return int(seg) if seg.isdigit() else None


def _json_type(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else f"a {type(value).__name__}"


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
    ``prefixItems``, local ``$ref`` (``#/...``) and an ``anyOf``/``oneOf`` with one non-null branch.

    Declared ``properties`` are trusted: a key not among them (and not matched by a pattern or an
    ``additionalProperties`` schema) is reported missing, so typos are caught before the chain runs.
    What the walk cannot follow (other combinators, remote refs) gives ``schema=None``: unknown, not wrong.
    """
    current: Mapping[str, Any] | None = _deref(schema, schema)
    for index, seg in enumerate(path):
        if current is None:
            return SchemaLookup(None)
        types = schema_types(current)
        position = _as_index(seg)
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


def schema_at_path(schema: Mapping[str, Any], path: Sequence[PathSegment]) -> Mapping[str, Any] | None:
    """The subschema at ``path`` when it can be known, else None (see :func:`lookup_schema`)."""
    return lookup_schema(schema, path).schema


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
    for _ in range(_MAX_REF_HOPS):
        if not isinstance(schema, Mapping):
            return None  # a boolean schema or garbage: nothing to learn from it
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return _single_branch(root, schema)
        if not ref.startswith("#"):
            return None
        target: Any = root
        for token in ref[1:].split("/")[1:] if ref != "#" else []:
            token = token.replace("~1", "/").replace("~0", "~")
            target = target.get(token) if isinstance(target, Mapping) else None
        schema = target
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
