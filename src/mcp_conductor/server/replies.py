"""How the meta tools answer: compact JSON text beside the structured content, ``isError`` when the call did not
do its job, and one-line messages for arguments that do not fit a meta tool's schema."""

from __future__ import annotations

import json
import re
from collections.abc import Set
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ValidationError


def reply(model: BaseModel, *, is_error: bool = False, exclude: Set[str] = frozenset()) -> CallToolResult:
    """``model`` as structured content and as compact JSON text: no indentation, no nulls, and none of the
    result's own fields that are empty or false (values inside ``outputs`` are the tools' data: kept as they are).
    """
    data = model.model_dump(mode="json", exclude_none=True, exclude=set(exclude) or None)
    data = {key: value for key, value in data.items() if value not in ([], {}, False) or key in _KEEP}
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data, is_error=is_error)


_KEEP = frozenset({"valid", "tools", "total_tools", "unavailable_servers"})  # false or empty, and still the answer


def argument_errors(tool: str, error: ValidationError, *, within: str | None = None) -> str:
    """One line per call: each wrong argument (``within`` an argument such as ``options``), what was expected
    and what was given."""
    parts = []
    for detail in error.errors(include_url=False):
        where = _where(((within,) if within else ()) + tuple(detail["loc"])) or "arguments"
        given = _given(detail.get("input"))
        expected = str(detail["msg"]).removeprefix("Input should be ").removeprefix("Value error, ")
        if detail["type"] == "missing":
            parts.append(f"{where} is required")
        elif detail["type"] == "extra_forbidden":
            parts.append(f"{where} is not an argument of {tool}" if not within else f"{where} is not an option")
        else:
            parts.append(f"{where}: expected {expected}, got {given}")
    return f"invalid arguments for {tool}: " + "; ".join(parts)


def _where(loc: tuple[Any, ...]) -> str:
    """``options.timeout_s``, ``plan.steps[0]``; a key that is not a plain name is quoted (``options["a b"]``),
    so the message stays one line whatever keys a caller sends."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME.fullmatch(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{json.dumps(str(part), ensure_ascii=False)}]"
    return out


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _given(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
