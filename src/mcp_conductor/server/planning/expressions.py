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
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_strings

from mcp_conductor.errors import ConductorError
from mcp_conductor.server.planning import functions
from mcp_conductor.server.planning.json_values import MAX_RESULT_BYTES, has_nul, preview, to_json

__all__ = [
    "MAX_NESTING",
    "MAX_RESULT_BYTES",
    "MAX_SOURCE_CHARS",
    "Expression",
    "ExpressionCompileError",
    "ExpressionEvalError",
    "compile_expression",
    "preview",
    "to_json",
]

MAX_SOURCE_CHARS = 2000
MAX_NESTING = 2
VARIABLES = ("inputs", "steps", "item", "index")
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
        if has_nul(data):
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
    declared = [
        _function("json", DYN, [S], functions.parse_json),
        _function("lines", cel.Type.List(S), [S], functions.lines),
        _function("extract", DYN, [S, S], functions.extract),
        _function("extract_all", cel.Type.List(S), [S, S], functions.extract_all),
    ]
    return cel.NewEnv(variables=variables, extensions=[ext_strings.ExtStrings()], functions=declared)


def _function(name: str, returns: Any, params: list[Any], impl: Callable[..., Any]) -> Any:
    overload_id = "_".join([name, *(p.name().lower() for p in params)])
    return cel.FunctionDecl(name, [cel.Overload(overload_id, returns, params, impl=impl)])


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
