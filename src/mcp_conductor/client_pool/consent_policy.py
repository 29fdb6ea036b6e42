"""The consent policy (``conductor.consent``) and each tool's effect class.

A tool is ``read_only`` (annotated ``readOnlyHint``), ``destructive`` (annotated ``destructiveHint: true``, or
named by ``consent.destructive`` for servers that do not annotate) or ``writes`` (everything else). With the
default mode ``ask``, a step needs the person's consent when its tool is destructive or matches ``ask``, unless
it matches ``allow``; mode ``allow`` turns consent off (the choice of someone who trusts every plan)::

    "conductor": {"consent": {"allow": ["notes/put"], "ask": ["git/*"], "destructive": ["legacy/rm_*"]}}

Patterns are fnmatch-style on ``server/tool`` ids (``*``, ``?``, ``[...]``), case-sensitive.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcp_conductor.client_pool.catalog import ToolInfo

Effect = Literal["read_only", "writes", "destructive"]
MAX_PATTERN_CHARS = 200


def _check_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        if not pattern.strip():
            raise ValueError("a pattern cannot be empty")
        if len(pattern) > MAX_PATTERN_CHARS:
            raise ValueError(f"a pattern is at most {MAX_PATTERN_CHARS} characters")
        if "/" not in pattern:
            raise ValueError(f'pattern "{pattern}" names no server: write "server/tool", "server/*" or "*/{pattern}"')
    return patterns


class ConsentPolicy(BaseModel):
    """``conductor.consent``: when a step needs the person's approval before a chain runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["ask", "allow"] = "ask"
    allow: tuple[str, ...] = ()
    ask: tuple[str, ...] = ()
    destructive: tuple[str, ...] = Field((), description="tools to treat as destructive (unannotated servers)")

    _patterns = field_validator("allow", "ask", "destructive")(_check_patterns)

    def effect(self, tool: ToolInfo) -> Effect:
        """The effect class of ``tool``; the config's ``destructive`` list wins over the tool's annotations."""
        if matches(tool.id, self.destructive):
            return "destructive"
        annotations = tool.annotations or {}
        if annotations.get("readOnlyHint"):
            return "read_only"
        # MCP's default for destructiveHint is true, but most servers leave it unset on harmless writers; only
        # an explicit true counts, so the form lists what the servers themselves call destructive.
        return "destructive" if annotations.get("destructiveHint") is True else "writes"

    def reason(self, tool_id: str, effect: Effect) -> Literal["destructive", "ask"] | None:
        """Why a step with this tool needs consent, or None when it does not."""
        if self.mode == "allow" or matches(tool_id, self.allow):
            return None
        if effect == "destructive":
            return "destructive"
        return "ask" if matches(tool_id, self.ask) else None


def matches(tool_id: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(tool_id, pattern) for pattern in patterns)


def allow_line(tool_ids: Iterable[str]) -> str:
    """The config line that would let these tools run without asking."""
    allowed = sorted(set(tool_ids))
    return json.dumps({"conductor": {"consent": {"allow": allowed}}}, ensure_ascii=False)[1:-1]
