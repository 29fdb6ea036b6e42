"""CEL expressions in plans (a data step's ``expr``, ``when``, ``foreach``): compile, evaluate, convert back.

The one adapter over the CEL implementation, ``cel-expr-python`` (Google's binding of CEL C++). Expressions are
evaluated on data (the activation ``{inputs, steps, item, index}``), never on text substituted into them.
Besides CEL's own functions and the strings extension (``split``, ``join``, ``substring``, ``trim``,
``lowerAscii``...) there are ``json(string)``, ``lines(string)``, ``extract(string, regex)`` (the first match,
or its first group; null when nothing matches) and ``extract_all(string, regex)``.

Compile errors raise ``ExpressionCompileError`` (kind ``invalid_expression``, with the column); evaluation
errors raise ``ExpressionEvalError`` (kind ``expression_error``) naming the expression, the failing part and a
preview of the value it was applied to. CEL always terminates; what this module bounds on top:
- the source: at most ``MAX_SOURCE_CHARS`` characters and ``MAX_NESTING`` nested comprehension macros
  (``map``/``filter``/``exists``/``all``/``exists_one`` inside another), so the work is at most
  O(source length x N^MAX_NESTING) for the largest list N among the values it reads;
- the values read: only the steps an expression names (``steps.ID``) are handed to it;
- the result: at most ``MAX_RESULT_BYTES`` of JSON;
- ``extract``/``extract_all`` use Python's ``re``, so patterns with a quantifier inside a quantified group (the
  shape behind catastrophic backtracking, e.g. ``(a+)+``) are refused.
The C++ evaluator has no iteration budget that the binding exposes, so a wall-clock bound is not enforced here.

Pure: no I/O, no anyio, no logging.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_strings

from mcp_conductor.errors import ConductorError

MAX_SOURCE_CHARS = 2000
MAX_NESTING = 2
MAX_RESULT_BYTES = 4_000_000
PREVIEW_CHARS = 120
VARIABLES = ("inputs", "steps", "item", "index")
_INT64 = (-(2**63), 2**63 - 1)
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_TOKEN = re.compile(
    r"""(?P<str>[rRbB]{0,2}(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
    |(?P<id>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<num>\d[\w.]*)
    |(?P<ws>\s+)
    |(?P<op>.)""",
    re.VERBOSE | re.DOTALL,
)
_COMPILE_ERROR = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # an escape, not the text "\u0000" after a backslash
_NUL_ENCODER = json.JSONEncoder(default=repr)  # built once: json.dumps with options builds one per call
_SCALARS = frozenset({int, str, bool, type(None)})
_ERROR = cel.Type.ERROR
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


class ExpressionCompileError(ConductorError):
    """An expression that does not compile (syntax, unknown variable or function, a limit)."""

    kind = "invalid_expression"

    def __init__(self, message: str, *, column: int | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.column = column


class ExpressionEvalError(ConductorError):
    """An expression whose evaluation failed; the message shows the expression, the part and the value."""

    kind = "expression_error"


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression and the names it reads (``steps.ID``, ``inputs.NAME``)."""

    source: str
    steps: tuple[str, ...]
    inputs: tuple[str, ...]
    loop: bool  # compiled with item and index declared
    program: Any = field(repr=False, compare=False)

    def evaluate(self, steps: Mapping[str, Any], inputs: Mapping[str, Any], item: Any = None, index: int = 0) -> Any:
        """The expression's value as JSON-able Python (see :func:`to_json`).

        Raises:
            ExpressionEvalError: CEL reported an error, or the result is not JSON or too big.
        """
        data = self._activation(steps, inputs, item, index)
        if _has_nul(data):
            raise ExpressionEvalError(
                f"{self.source!r} cannot read its values: a string in them holds a NUL character (\\u0000), "
                "which the CEL binding would cut off there",
                hint="remove NUL characters upstream",
            )
        try:
            result = self.program.eval(data=data)
        except RuntimeError as exc:  # the binding raises (instead of an error value) when a value won't convert
            raise self._failure(_first_line(str(exc)), data) from None
        if result.type() == _ERROR:
            raise self._failure(str(result.value()), data)
        try:
            return to_json(result.plain_value())
        except ValueError as exc:
            raise self._failure(str(exc), data) from None

    def _activation(self, steps: Mapping[str, Any], inputs: Mapping[str, Any], item: Any, index: int) -> dict[str, Any]:
        data: dict[str, Any] = {"steps": {s: steps[s] for s in self.steps if s in steps}, "inputs": inputs}
        if self.loop:
            data["item"] = item
            data["index"] = index
        return data

    def _failure(self, problem: str, data: Mapping[str, Any]) -> ExpressionEvalError:
        part, value = _failing_part(self, problem, data)
        message = f"{self.source!r} failed: {problem}"
        if part is not None and part != self.source:
            message += f"; at {part!r}"
        if value is not _NOTHING:
            message += f", applied to {preview(value)}"
        return ExpressionEvalError(message[:1000], hint=_eval_hint(problem))


def compile_expression(source: str, *, loop: bool = False) -> Expression:
    """Compile ``source`` with ``inputs`` and ``steps`` declared (and ``item``, ``index`` when ``loop``).

    Raises:
        ExpressionCompileError: a syntax error, an unknown variable or function, or a limit exceeded.
    """
    return _compile(source, loop)


@functools.lru_cache(maxsize=4096)  # plans are checked again at every run; Expression is immutable
def _compile(source: str, loop: bool) -> Expression:
    if not isinstance(source, str) or not source.strip():
        raise ExpressionCompileError("an expression must be a non-empty string", column=None)
    if len(source) > MAX_SOURCE_CHARS:
        message = f"the expression is {len(source)} characters; the limit is {MAX_SOURCE_CHARS}"
        raise ExpressionCompileError(message, column=None, hint="split it into several data steps")
    try:
        program = _env(loop).compile(source)
    except RuntimeError as exc:
        raise _compile_error(str(exc), loop) from None
    steps, inputs = _scan(source)
    return Expression(source, steps, inputs, loop, program)


def _compile_error(text: str, loop: bool) -> ExpressionCompileError:
    found = _COMPILE_ERROR.search(text)
    if found is None:
        return ExpressionCompileError(_first_line(text), column=None)
    line, column, message = int(found.group(1)), int(found.group(2)), found.group(3).strip()
    message = message.replace(" (in container '')", "")
    where = f"column {column}" if line == 1 else f"line {line}, column {column}"
    hint = "CEL syntax, e.g. size(steps.ls.entries) > 0 && inputs.mode == 'fast'"
    if "undeclared reference" in message:
        names = "inputs, steps, item and index" if loop else "inputs and steps (item and index only in foreach steps)"
        hint = f"the variables are {names}; read a step's value as steps.ID"
    elif "no matching overload" in message:
        hint = "check the argument types: json, lines, extract and extract_all take strings"
    return ExpressionCompileError(f"{message} (at {where})", column=column, hint=hint)


def _scan(source: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The step ids and input names read as ``steps.ID`` / ``inputs.NAME``; checks the macro nesting.

    Runs on source the CEL compiler accepted, so tokens are well formed.
    """
    tokens = [(m.lastgroup, m.group(), m.start()) for m in _TOKEN.finditer(source) if m.lastgroup != "ws"]
    steps: dict[str, None] = {}
    inputs: dict[str, None] = {}
    stack: list[bool] = []  # open brackets: is it a comprehension macro's parenthesis?
    for i, (kind, text, at) in enumerate(tokens):
        before = tokens[i - 1][1] if i else ""
        after = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "id" and text in ("steps", "inputs") and before != ".":
            name = tokens[i + 2] if after == "." and i + 2 < len(tokens) else None
            if name is None or name[0] != "id":
                hint = f"write {text}.NAME so the planner knows what the expression reads"
                raise ExpressionCompileError(f"{text} must be followed by .NAME", column=at + 1, hint=hint)
            (steps if text == "steps" else inputs)[name[1]] = None
        elif kind == "op" and text in "([{":
            stack.append(text == "(" and before in _MACROS and i >= 2 and tokens[i - 2][1] == ".")
            if sum(stack) > MAX_NESTING:
                message = f"comprehensions nested more than {MAX_NESTING} deep"
                hint = "compute the inner part in a data step of its own"
                raise ExpressionCompileError(message, column=at + 1, hint=hint)
        elif kind == "op" and text in ")]}" and stack:
            stack.pop()
    return tuple(steps), tuple(inputs)


# -- the environment and the custom functions -----------------------------------------------------------


@functools.cache
def _env(loop: bool) -> Any:
    variables = {"inputs": cel.Type.DYN, "steps": cel.Type.DYN}
    if loop:
        variables |= {"item": cel.Type.DYN, "index": cel.Type.INT}
    S, DYN = cel.Type.STRING, cel.Type.DYN
    functions = [
        _function("json", DYN, [S], _json),
        _function("lines", cel.Type.List(S), [S], _lines),
        _function("extract", DYN, [S, S], _extract),
        _function("extract_all", cel.Type.List(S), [S, S], _extract_all),
    ]
    return cel.NewEnv(variables=variables, extensions=[ext_strings.ExtStrings()], functions=functions)


def _function(name: str, returns: Any, params: list[Any], impl: Callable[..., Any]) -> Any:
    overload_id = "_".join([name, *(p.name().lower() for p in params)])
    return cel.FunctionDecl(name, [cel.Overload(overload_id, returns, params, impl=impl)])


def _json(text: str) -> Any:
    def no_constant(name: str) -> Any:
        raise ValueError(f"json(): {name} is not JSON")

    value = json.loads(text, parse_constant=no_constant)
    _check_ints(value)
    return value


def _check_ints(value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"json(): the integer {value} does not fit CEL's 64-bit int")
    if isinstance(value, dict):
        for item in value.values():
            _check_ints(item)
    elif isinstance(value, list):
        for item in value:
            _check_ints(item)


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()  # a final newline ends the last line; it does not start another
    return [part.removesuffix("\r") for part in parts]


def _extract(text: str, pattern: str) -> str | None:
    found = _regex(pattern).search(text)
    if found is None:
        return None
    return found.group(1) if found.re.groups else found.group(0)


def _extract_all(text: str, pattern: str) -> list[str]:
    regex = _regex(pattern)
    return [m.group(1) if regex.groups else m.group(0) for m in regex.finditer(text)]


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    if _nested_repeat(pattern):
        raise ValueError(f"the regular expression {pattern!r} repeats a repeated group (like (a+)+): refused")
    return compiled


def _nested_repeat(pattern: str) -> bool:
    """A quantified group that holds another unbounded quantifier: the backtracking blow-up shape."""
    from re import _parser  # type: ignore[attr-defined]  # the stdlib's own parse tree; no public API has it

    repeats = {_parser.MAX_REPEAT, _parser.MIN_REPEAT, _parser.POSSESSIVE_REPEAT}

    def walk(items: Any, inside: bool) -> bool:
        for op, arg in items:
            if op in repeats:
                _low, high, body = arg
                unbounded = high is _parser.MAXREPEAT or high > 100
                if (inside and unbounded) or walk(body, inside or unbounded):
                    return True
            elif op is _parser.SUBPATTERN:
                if walk(arg[-1], inside):
                    return True
            elif op is _parser.BRANCH and any(walk(branch, inside) for branch in arg[1]):
                return True
        return False

    return walk(_parser.parse(pattern), False)


# -- values ---------------------------------------------------------------------------------------------


def to_json(value: Any, budget: int = MAX_RESULT_BYTES) -> Any:
    """A CEL plain value as JSON-able Python, exactly: bool, int, float (finite), str, None, list, dict with
    string keys. Anything else (bytes, durations, timestamps, types, NaN) is an error, not a guess.

    Raises:
        ValueError: the value is not JSON, or its JSON is bigger than ``budget`` bytes (estimated).
    """
    if type(value) in _SCALARS:  # the common case, without the walk below
        if type(value) is str and len(value) > budget:
            raise ValueError(f"the result is larger than {budget} bytes")
        return value
    left = [budget]

    def spend(n: int) -> None:
        left[0] -= n
        if left[0] < 0:
            raise ValueError(f"the result is larger than {budget} bytes")

    def convert(v: Any) -> Any:
        if v is None or isinstance(v, bool):
            spend(5)
            return v
        if isinstance(v, int):
            spend(8)
            return v
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ValueError(f"the result holds {v}, which JSON cannot represent")
            spend(8)
            return v
        if isinstance(v, str):
            spend(len(v) + 2)
            return v
        if isinstance(v, list | tuple):
            spend(2)
            return [convert(x) for x in v]
        if isinstance(v, dict):
            spend(2)
            out = {}
            for key, item in v.items():
                if not isinstance(key, str):
                    raise ValueError(f"map keys must be strings in JSON; found {type(key).__name__} key {key!r}")
                spend(len(key) + 3)
                out[key] = convert(item)
            return out
        what = _cel_type_name(v)
        raise ValueError(f"the result holds a {what}, which is not JSON; convert it with string(...)")

    return convert(value)


def _cel_type_name(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "bytes value"
    if isinstance(value, timedelta):
        return "duration"
    if isinstance(value, datetime):
        return "timestamp"
    return f"{type(value).__name__} value"


def _has_nul(data: Any) -> bool:
    """Whether a string (or key) in ``data`` holds U+0000: cel-expr-python 0.1.3 cuts strings there."""
    try:
        text = _NUL_ENCODER.encode(data)  # C speed; a NUL is always escaped as \\u0000
    except (ValueError, RecursionError):
        return False  # not JSON (a repr'd object) or too deep: the conversion itself reports it
    return "\\u0000" in text and _ESCAPED_NUL.search(text) is not None


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A short JSON preview of a value: ``{"a": 1, ...`` (cut at ``limit`` characters)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- locating the failing part of an expression ---------------------------------------------------------

_NOTHING = object()


def _failing_part(expr: Expression, problem: str, data: Mapping[str, Any]) -> tuple[str | None, Any]:
    """The sub-expression that failed and the value it was applied to, when the error names a key; else the
    whole expression and the first value it reads (best effort: errors carry no position)."""
    key = _QUOTED.search(problem)
    if key is not None and ("not found" in problem.lower() or "no such key" in problem.lower()):
        name = key.group(1)
        for found in re.finditer(r"((?:[A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[^\]]*\])*)", expr.source):
            chain = found.group(1)
            if chain.endswith("." + name) or chain.endswith(f"['{name}']") or chain.endswith(f'["{name}"]'):
                base = chain[: chain.rindex("." + name) if chain.endswith("." + name) else chain.rindex("[")]
                return chain, _value_of(base, expr.loop, data)
    for source in ("item", *(f"steps.{s}" for s in expr.steps)):
        if (source != "item" or expr.loop) and (value := _value_of(source, expr.loop, data)) is not _NOTHING:
            return None, value
    return None, _NOTHING


def _value_of(source: str, loop: bool, data: Mapping[str, Any]) -> Any:
    try:
        result = _env(loop).compile(source).eval(data=data)
    except RuntimeError:
        return _NOTHING
    if result.type().name() == "ERROR":
        return _NOTHING
    try:
        return result.plain_value()
    except Exception:  # a value the binding cannot hand back: no preview
        return _NOTHING


def _eval_hint(problem: str) -> str:
    if "not found" in problem.lower() or "no such key" in problem.lower():
        return "guard optional fields with has(x.field) or x.field if present: has(x.f) ? x.f : default"
    if "no matching overload" in problem.lower():
        return "the value has another type than the expression expects; check it with type(x)"
    return "check the value the expression reads (the step's output in the run record)"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
