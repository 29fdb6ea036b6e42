"""CEL results back to JSON-able Python, exactly; short previews of values for error messages."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from typing import Any

MAX_RESULT_BYTES = 4_000_000
PREVIEW_CHARS = 120
_SCALARS = frozenset({int, str, bool, type(None)})
_NUL_ENCODER = json.JSONEncoder(default=repr)  # built once: json.dumps with options builds one per call
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")  # an escape, not the text "\u0000" after a backslash


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


def has_nul(data: Any) -> bool:
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
