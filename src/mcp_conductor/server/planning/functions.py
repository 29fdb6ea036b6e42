"""The functions plan expressions get on top of CEL's own, in plain Python (``expressions`` registers them).

``json(string)`` parses JSON text (integers must fit CEL's 64-bit int; NaN and Infinity are not JSON);
``lines(string)`` splits on newlines (a final newline ends the last line; ``\\r\\n`` counts as one);
``extract(string, regex)`` is the first match, or its first group, or null; ``extract_all(string, regex)`` every
match (or first group). Regular expressions are Python's; a pattern with an unbounded quantifier inside a
quantified group (``(a+)+``, the shape behind catastrophic backtracking) is refused. A ``ValueError`` raised
here becomes the expression's error value.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

_INT64 = (-(2**63), 2**63 - 1)


def parse_json(text: str) -> Any:
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


def lines(text: str) -> list[str]:
    parts = text.split("\n")
    if parts and parts[-1] == "":
        parts.pop()  # a final newline ends the last line; it does not start another
    return [part.removesuffix("\r") for part in parts]


def extract(text: str, pattern: str) -> str | None:
    found = _regex(pattern).search(text)
    if found is None:
        return None
    return found.group(1) if found.re.groups else found.group(0)


def extract_all(text: str, pattern: str) -> list[str]:
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
