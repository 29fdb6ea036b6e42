"""The value of a step (what references see) and how much of it a result returns.

A step's value is the downstream result's ``structuredContent`` when present; else, when the result is a single
text block that parses as JSON, that value; else the text (blocks joined by newlines). Images and other blocks
stay in the stored result summary but are not referenced.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.types import CallToolResult, TextContent

from mcp_conductor.client_pool.config_models import DEFAULT_OUTPUT_BUDGET_BYTES

__all__ = ["DEFAULT_OUTPUT_BUDGET_BYTES", "budgeted", "step_resource_uri", "step_value"]


def step_value(result: CallToolResult) -> Any:
    if result.structured_content is not None:
        return result.structured_content
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    if len(texts) == 1 and len(result.content) == 1:
        try:
            return json.loads(texts[0])
        except ValueError:
            return texts[0]
    if texts:
        return "\n".join(texts)
    kinds = sorted({getattr(block, "type", "unknown") for block in result.content})
    return {"content_types": kinds, "note": "non-text content is not referenced"} if kinds else None


def budgeted(value: Any, *, budget_bytes: int, resource_uri: str) -> Any:
    """``value`` itself if it fits the budget; else a marker with a preview and where the full value lives."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    size = len(text.encode())
    if size <= budget_bytes:
        return value
    preview = text.encode()[: max(0, budget_bytes - 400)].decode("utf-8", errors="ignore")
    return {
        "truncated": True,
        "size_bytes": size,
        "preview": preview,
        "full_value": resource_uri,
        "note": f"output larger than {budget_bytes} bytes; read the full value from the resource {resource_uri}",
    }


def step_resource_uri(run_id: str, step_id: str) -> str:
    return f"conductor://runs/{run_id}/steps/{step_id}"
