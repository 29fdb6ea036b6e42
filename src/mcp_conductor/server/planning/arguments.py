"""Checking a step's arguments against its tool's ``inputSchema`` before anything runs.

The arguments are validated once, with stand-ins at the reference positions: an exact ``${inputs...}`` is
replaced by its value; an exact ``${steps...}`` by an opaque value whose type error tells which JSON types the
schema expects there (compared with what the producing tool's ``outputSchema`` declares); text with a step
reference inside by a string of unknown content. Errors that cannot be decided before run time are dropped.
Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
    ValidationError,
)
from jsonschema.protocols import Validator

from mcp_conductor.client_pool.catalog import ToolInfo
from mcp_conductor.schemas import schema_types
from mcp_conductor.server.planning.references import (
    JsonPath,
    Reference,
    ReferenceResolutionError,
    Template,
    render,
)
from mcp_conductor.server.planning.schema_paths import lookup_schema
from mcp_conductor.suggest import close_matches

_COMPILED: dict[str, Validator] = {}  # by canonical schema text; validators are immutable, so sharing is safe
_COMPILED_MAX = 4096
_WHOLE_VALUE_KEYWORDS = frozenset({"anyOf", "oneOf", "not", "enum", "const", "contains", "uniqueItems"})
_VALIDATORS: dict[str, type[Validator]] = {
    str(cls.META_SCHEMA.get("$id") or cls.META_SCHEMA.get("id")).rstrip("#"): cls
    for cls in (Draft4Validator, Draft6Validator, Draft7Validator, Draft201909Validator, Draft202012Validator)
}


@dataclass(frozen=True, slots=True)
class ArgumentProblem:
    """One validation failure, ``path`` inside the arguments."""

    path: JsonPath
    message: str
    hint: str | None = None
    suggestions: tuple[str, ...] = ()


def compile_validator(schema: Mapping[str, Any]) -> Validator:
    """A validator for a tool's ``inputSchema``: its ``$schema`` draft, else 2020-12.

    Raises:
        SchemaError: the schema is not valid JSON Schema.
    """
    plain = _plain(schema)
    key = json.dumps(plain, sort_keys=True, default=str)
    validator = _COMPILED.get(key)
    if validator is None:
        cls = _VALIDATORS.get(str(plain.get("$schema", "")).rstrip("#"), Draft202012Validator)
        cls.check_schema(plain)  # the costly part: a plan usually reuses the same few tools' schemas
        validator = cls(plain)
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        _COMPILED[key] = validator
    return validator


def check_arguments(
    validator: Validator,
    arguments: Mapping[str, Any],
    templates: Iterable[tuple[JsonPath, Template]],
    inputs: Mapping[str, Any],
    producers: Mapping[str, ToolInfo | None],
) -> list[ArgumentProblem]:
    """Validate arguments; the strings at ``templates`` hold references, ``producers`` maps step ids to tools.

    Raises:
        Exception: whatever a broken schema makes jsonschema raise (bad regex, unresolvable ``$ref``).
    """
    instance = dict(arguments)
    stand_ins: dict[JsonPath, Reference | None] = {}  # path -> the exact step reference, or None for text
    for path, template in templates:
        value, ref = _stand_in(template, inputs)
        _set_in(instance, path, value)
        if value is _OPAQUE or value is _TEXT:
            stand_ins[path] = ref
    above = {path[:n] for path in stand_ins for n in range(len(path))}
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: [str(seg) for seg in e.absolute_path]):
        path = tuple(error.absolute_path)
        if path in stand_ins:
            found = _check_stand_in(stand_ins[path], _expected_types(error, path), producers)
            problems += [ArgumentProblem(path, *found)] if found else []
        elif path not in above or error.validator not in _WHOLE_VALUE_KEYWORDS:
            problems.append(ArgumentProblem(path, error.message, suggestions=_unexpected_key_fixes(error)))
    return problems


def _stand_in(template: Template, inputs: Mapping[str, Any]) -> tuple[Any, Reference | None]:
    exact = template.exact
    if exact is not None and exact.source != "inputs":  # a step's value, or a foreach item or index
        return _OPAQUE, exact
    if all(p.reference.source == "inputs" for p in template.placeholders):
        try:
            return render(template, {}, inputs), None
        except ReferenceResolutionError:  # reported by the reference check
            return (_OPAQUE if exact else _TEXT), None
    return _TEXT, None


def _check_stand_in(
    ref: Reference | None, expected: set[str], producers: Mapping[str, ToolInfo | None]
) -> tuple[str, str] | None:
    wanted = " or ".join(sorted(expected))
    if ref is None:
        if expected and "string" not in expected:
            hint = "make the whole string one reference to pass the value with its own type"
            return f"expects {wanted} here, but text with references in it is a string", hint
        return None
    producer = producers.get(ref.name) if ref.source == "steps" else None
    if not expected or producer is None or producer.output_schema is None:
        return None
    source = lookup_schema(producer.output_schema, ref.path).schema
    given = schema_types(source) if source is not None else ()
    if given and not _compatible(given, expected):
        message = f"expects {wanted} here, but {ref} is {' or '.join(given)}"
        return message, f"the outputSchema of {producer.id} says so; reference a field of the expected type"
    return None


class _Opaque:
    """Stands in for an exact step reference: no JSON type matches it."""

    def __repr__(self) -> str:
        return "<step value>"


class _Text(str):
    """Stands in for text with a step reference interpolated: a string of unknown content."""

    __slots__ = ()


_OPAQUE = _Opaque()
_TEXT = _Text()


def _set_in(instance: dict[str, Any], path: JsonPath, value: Any) -> None:
    # Copy the containers along the path: the normalized arguments must not change.
    container: Any = instance
    for seg in path[:-1]:
        child = container[seg]
        container[seg] = child = dict(child) if isinstance(child, dict) else list(child)
        container = child
    container[path[-1]] = value


def _expected_types(error: ValidationError, path: JsonPath) -> set[str]:
    if error.validator == "type":
        return set(_as_list(error.validator_value))
    if error.validator in ("anyOf", "oneOf") and isinstance(error.validator_value, list):
        by_branch: dict[Any, set[str]] = {}
        for sub in error.context or ():
            if sub.validator == "type" and tuple(sub.absolute_path) == path and sub.relative_schema_path:
                by_branch.setdefault(sub.relative_schema_path[0], set()).update(_as_list(sub.validator_value))
        if len(by_branch) == len(error.validator_value):  # every branch said which types it takes
            return set().union(*by_branch.values())
    return set()


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _compatible(given: Iterable[str], expected: set[str]) -> bool:
    numeric = {"integer", "number"}
    return any(t in expected or (t in numeric and expected & numeric) for t in given)


def _unexpected_key_fixes(error: ValidationError) -> tuple[str, ...]:
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return ()
    known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
    return tuple(dict.fromkeys(fix for key in error.instance if key not in known for fix in close_matches(key, known)))


def _plain(schema: Any) -> Any:
    # jsonschema tests "object" with isinstance(dict); catalog schemas may be read-only mappings.
    if isinstance(schema, Mapping):
        return {str(k): _plain(v) for k, v in schema.items()}
    if isinstance(schema, list | tuple):
        return [_plain(v) for v in schema]
    return schema
