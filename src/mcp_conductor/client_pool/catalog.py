"""The merged tool catalog: every downstream tool under its ``server/tool`` id.

The catalog is a plain value store fed by the connections (one ``set_server_tools`` per listing). Readers take
an immutable ``snapshot()``; its ``version`` changes whenever any server's tool list changes, so indexes built
from it (discovery) know when to rebuild. Id resolution (full id, unique bare name, did-you-mean) lives here
because all three meta tools share it. The catalog also remembers the tools a server offers but the config hides
(``tools.allow`` / ``tools.deny``), so naming one gets "hidden by the config" rather than "unknown tool".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from types import MappingProxyType
from typing import Any, NewType

from mcp_conductor.errors import AmbiguousToolError, ToolHiddenError, UnknownToolError

ServerName = NewType("ServerName", str)
ToolId = NewType("ToolId", str)


def tool_id(server: str, name: str) -> ToolId:
    """The canonical id of a tool: ``server/tool``."""
    return ToolId(f"{server}/{name}")


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """One downstream tool as the catalog knows it (schemas in wire form, camelCase keys)."""

    server: ServerName
    name: str
    description: str = ""
    title: str | None = None
    input_schema: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({"type": "object"}))
    output_schema: Mapping[str, Any] | None = None
    annotations: Mapping[str, Any] | None = None

    @property
    def id(self) -> ToolId:
        return tool_id(self.server, self.name)

    @property
    def read_only(self) -> bool:
        return bool(self.annotations and self.annotations.get("readOnlyHint"))

    @property
    def idempotent(self) -> bool:
        return bool(self.annotations and (self.annotations.get("idempotentHint") or self.read_only))

    def export(self) -> dict[str, Any]:
        """The offline catalog record (``tools --json``, ``discover --catalog``)."""
        return {
            "id": self.id,
            "server": self.server,
            "name": self.name,
            "description": self.description,
            "inputSchema": dict(self.input_schema),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ToolInfo:
        """Build from an exported record (or a wire ``Tool`` dump plus ``server``)."""
        server = record.get("server")
        name = record.get("name")
        if not server and isinstance(record.get("id"), str) and "/" in record["id"]:
            server, _, fallback = str(record["id"]).partition("/")
            name = name or fallback
        if not server or not name:
            raise ValueError(f"catalog record needs 'server' and 'name' (or an 'id' of the form server/tool): {record}")
        return cls(
            server=ServerName(str(server)),
            name=str(name),
            description=str(record.get("description") or ""),
            title=record.get("title"),
            input_schema=record.get("inputSchema") or {"type": "object"},
            output_schema=record.get("outputSchema"),
            annotations=record.get("annotations"),
        )


@dataclass(frozen=True, slots=True)
class CatalogSnapshot:
    """An immutable view of the catalog at one version; ``hidden`` maps the ids the config hides to why."""

    version: int
    tools: Mapping[ToolId, ToolInfo]
    hidden: Mapping[ToolId, str] = field(default_factory=lambda: MappingProxyType({}))

    def __len__(self) -> int:
        return len(self.tools)

    def by_server(self, server: str) -> list[ToolInfo]:
        return [t for t in self.tools.values() if t.server == server]

    def resolve(self, ref: str) -> ToolInfo:
        """Resolve a full id or a unique bare tool name.

        Raises:
            ToolHiddenError: a tool the server offers but the config hides (a bare name: when no shown tool has it).
            UnknownToolError: nothing matches; carries up to three suggestions.
            AmbiguousToolError: a bare name offered by several servers.
        """
        found = self.tools.get(ToolId(ref))
        if found is not None:
            return found
        if "/" not in ref:
            matches = [t for t in self.tools.values() if t.name == ref]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise AmbiguousToolError(ref, [t.id for t in matches])
        hidden = [tid for tid in sorted(self.hidden) if tid == ref or tid.rpartition("/")[2] == ref]
        if hidden:
            raise ToolHiddenError(hidden[0] if len(hidden) == 1 else ref, "; ".join(self.hidden[t] for t in hidden))
        raise UnknownToolError(ref, self.suggest(ref))

    def suggest(self, ref: str, limit: int = 3) -> list[str]:
        """Up to ``limit`` ids like ``ref``, most alike first: by the words their tool names share with it
        (``get_time`` is nearer ``get_current_time`` than ``convert_time``), then by spelling; a tool on the
        server ``ref`` names comes before one elsewhere. Only ids that share a word or are spelled alike."""
        server, _, bare = ref.rpartition("/")
        words = _words(bare)
        ranked = []
        for tool in self.tools.values():
            shared = len(words & _words(tool.name)) / max(1, len(words | _words(tool.name)))
            spelled = SequenceMatcher(None, bare.lower(), tool.name.lower()).ratio()
            if shared > 0 or spelled >= 0.6:
                ranked.append((-shared, -spelled, tool.server != server, tool.id))
        return [tool_id for *_, tool_id in sorted(ranked)[:limit]]


def _words(name: str) -> set[str]:
    """The words of a tool name: ``getCurrentTime`` and ``get_current-time`` both give get, current, time."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if len(w) > 1}


class Catalog:
    """The mutable, merged catalog the connections feed; readers use ``snapshot()``."""

    def __init__(self) -> None:
        self._by_server: dict[ServerName, tuple[ToolInfo, ...]] = {}
        self._hidden: dict[ServerName, dict[str, str]] = {}
        self._version = 0
        self._snapshot: CatalogSnapshot | None = None

    @property
    def version(self) -> int:
        return self._version

    def set_server_tools(
        self, server: ServerName, tools: Iterable[ToolInfo], *, hidden: Mapping[str, str] | None = None
    ) -> None:
        """Replace ``server``'s tools; ``hidden`` maps the names it offers but the config hides to why."""
        new, new_hidden = tuple(tools), dict(hidden or {})
        if self._by_server.get(server) == new and self._hidden.get(server, {}) == new_hidden:
            return
        self._by_server[server] = new
        self._hidden[server] = new_hidden
        self._bump()

    def drop_server(self, server: ServerName) -> None:
        self._hidden.pop(server, None)
        if self._by_server.pop(server, None) is not None:
            self._bump()

    def snapshot(self) -> CatalogSnapshot:
        if self._snapshot is None:
            merged = {t.id: t for tools in self._by_server.values() for t in tools}
            hidden = {tool_id(server, name): why for server, by in self._hidden.items() for name, why in by.items()}
            self._snapshot = CatalogSnapshot(self._version, MappingProxyType(merged), MappingProxyType(hidden))
        return self._snapshot

    def _bump(self) -> None:
        self._version += 1
        self._snapshot = None
