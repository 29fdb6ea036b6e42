"""``${steps.ID.path}`` and ``${inputs.NAME}`` references: parsing, finding, substitution, schema lookup.

Grammar of a string argument (anything else is literal text)::

    $${                      a literal "${"
    ${steps.ID<path>}        the value of step ID (the planner also accepts CHAIN_RESULT and rewrites it)
    ${inputs.NAME<path>}     the plan input NAME
    ${item<path>}            in a foreach step: the current element (``${item.name}``)
    ${index}                 in a foreach step: the current element's position, from 0
    <path>                   any of  .key  [0]  ["any key"]   (key: letters, digits, _ and -)

A string that is exactly one reference takes the referenced value with its JSON type; a reference inside a
longer string is interpolated as text (strings as they are, anything else as JSON). Dict keys are never
expanded, and values taken from step outputs are data: they are not parsed again.

Everything here is pure; the planner uses it to check plans and the executor to build each step's arguments.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mcp_conductor.clip import clip
from mcp_conductor.errors import ConductorError

Source = Literal["steps", "inputs", "item", "index"]
LOOP_SOURCES = ("item", "index")
PathSegment = str | int
JsonPath = tuple[PathSegment, ...]

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"(\d+)\]")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``${source.name<path>}`` reference."""

    source: Source
    name: str
    path: JsonPath = ()

    def __str__(self) -> str:
        if self.source in LOOP_SOURCES:
            return "${" + f"{self.source}{format_path(self.path)}" + "}"
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


@functools.lru_cache(maxsize=4096)  # a plan's strings are parsed when it is checked and again at every run
def parse_template(text: str) -> Template:
    """Split a string into literal text and references (a ``Template`` is immutable, so results are shared).

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
    if match is None or match.group() not in ("steps", "inputs", *LOOP_SOURCES):
        raise ReferenceSyntaxError(text, i, "expected 'steps.', 'inputs.', 'item' or 'index' after '${'")
    source: Source = match.group()  # type: ignore[assignment]  # one of the four, checked above
    i = match.end()
    name = ""
    if source not in LOOP_SOURCES:
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


def substitute(
    arguments: Any, steps: Mapping[str, Any], inputs: Mapping[str, Any], loop: tuple[Any, int] | None = None
) -> Any:
    """A copy of ``arguments`` with every reference replaced by its value.

    Exact references keep the value's JSON type; interpolated ones become text. Referenced values are shared,
    not copied: treat the result as read-only.

    Raises:
        ReferenceSyntaxError: a malformed reference (the planner rejects these earlier).
        ReferenceResolutionError: a referenced step, input or path does not exist.
    """
    if isinstance(arguments, str):
        return render(parse_template(arguments), steps, inputs, loop) if "$" in arguments else arguments
    if isinstance(arguments, Mapping):
        return {key: substitute(item, steps, inputs, loop) for key, item in arguments.items()}
    if isinstance(arguments, list | tuple):
        return [substitute(item, steps, inputs, loop) for item in arguments]
    return arguments


def render(
    template: Template, steps: Mapping[str, Any], inputs: Mapping[str, Any], loop: tuple[Any, int] | None = None
) -> Any:
    """The value of one parsed string (see :func:`substitute`); ``loop`` is a foreach item and its index."""
    exact = template.exact
    if exact is not None:
        return resolve(exact, steps, inputs, loop)
    out: list[str] = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
        else:
            value = resolve(part.reference, steps, inputs, loop)
            out.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    return "".join(out)


def resolve(
    reference: Reference, steps: Mapping[str, Any], inputs: Mapping[str, Any], loop: tuple[Any, int] | None = None
) -> Any:
    """The value a reference points at.

    Raises:
        ReferenceResolutionError: the step has no value, the input is missing, the path does not exist, or
            ``${item}`` / ``${index}`` outside a foreach step.
    """
    if reference.source in LOOP_SOURCES:
        if loop is None:
            raise ReferenceResolutionError(reference, f"{reference} exists only in a foreach step")
        root_value = loop[0] if reference.source == "item" else loop[1]
        owner = "the item" if reference.source == "item" else "the index"
    else:
        root = steps if reference.source == "steps" else inputs
        if reference.name not in root:
            what = f"step {reference.name!r} has no value" if reference.source == "steps" else "no such input"
            raise ReferenceResolutionError(reference, f"{reference}: {what}")
        root_value = root[reference.name]
        owner = f"the output of step {reference.name!r}" if reference.source == "steps" else "the input"
    value, missing_at = follow_path(root_value, reference.path)
    if missing_at is not None:
        seg = reference.path[missing_at]
        what = f"key {seg!r}" if isinstance(seg, str) and not isinstance(value, list | tuple) else f"item {seg}"
        at = format_path(reference.path[:missing_at]) or "the top"
        raise ReferenceResolutionError(
            reference, f"{reference}: {owner} has no {what} at {at}; there it is {_json_type(value)}{_preview(value)}"
        )
    return value


PREVIEW_CHARS = 200


def _preview(value: Any) -> str:
    """What the value actually is, for the model to fix the reference in one go: an object's keys, and the
    start of the value as JSON."""
    keys = f" with keys {', '.join(map(str, list(value)[:20]))}" if isinstance(value, Mapping) and value else ""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"{keys}: {clip(text, PREVIEW_CHARS)}"


def follow_path(value: Any, path: Sequence[PathSegment]) -> tuple[Any, int | None]:
    """Walk ``path`` into a value: ``(found, None)``, or ``(last value reached, index of the missing part)``.

    A key made of digits (``.0``) also indexes a list, as people often write it that way.
    """
    for index, seg in enumerate(path):
        if isinstance(value, Mapping) and isinstance(seg, str) and seg in value:
            value = value[seg]
        elif isinstance(value, list | tuple) and (position := as_index(seg)) is not None:
            if position >= len(value):
                return value, index
            value = value[position]
        else:
            return value, index
    return value, None


def as_index(seg: PathSegment) -> int | None:
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
