"""Demo MCP server "notes": a small key-value store of text notes.

Notes live in memory. If ``NOTES_FILE`` is set, they are loaded from that JSON file at start and saved to it
(atomically) after every change, so they survive a restart. Run over stdio with
``python -m mcp_conductor.demo.notes``.
"""

import os
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from mcp_conductor.demo._persist import read_json, write_json_atomic

_READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False, open_world_hint=False)
_PUT = ToolAnnotations(read_only_hint=False, idempotent_hint=False, destructive_hint=True, open_world_hint=False)
_DELETE = ToolAnnotations(read_only_hint=False, idempotent_hint=True, destructive_hint=True, open_world_hint=False)

Key = Annotated[str, Field(min_length=1, max_length=256, description="The note's key, e.g. 'meetings/2024-05-01'.")]


class _Stored(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    value: str
    version: int


_STORE = TypeAdapter(dict[str, _Stored])


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PutResult(_Out):
    key: str = Field(description="The key written.")
    version: int = Field(description="How many times this key has been written since it was created (1 = new).")


class GetResult(_Out):
    key: str = Field(description="The key asked for.")
    value: str | None = Field(description="The note's text, or null if there is no such note.")
    found: bool = Field(description="Whether a note with this key exists.")


class KeyList(_Out):
    keys: list[str] = Field(description="Matching keys in alphabetical order.")


class DeleteResult(_Out):
    key: str = Field(description="The key asked for.")
    deleted: bool = Field(description="True if a note was removed, false if there was none.")


def _load(notes_file: Path) -> dict[str, _Stored]:
    try:
        return _STORE.validate_python(read_json(notes_file).get("notes", {}))
    except ValidationError as exc:
        raise ValueError(f"{notes_file} does not hold notes: {exc}") from exc


def build_server(notes_file: Path | None = None) -> MCPServer:
    """A notes server with its own empty store, or the store saved in ``notes_file`` if given.

    Raises:
        ValueError: ``notes_file`` exists but does not hold notes.
    """
    server = MCPServer(
        "notes",
        version="0.1.0",
        instructions="A key-value store of text notes. Keys are free-form strings; use '/' to group them.",
        log_level="WARNING",
    )
    notes = _load(notes_file) if notes_file else {}

    def commit(new_notes: dict[str, _Stored]) -> None:
        # Save first: if the disk write fails, memory still matches the file and the call reports an error.
        nonlocal notes
        if notes_file is not None:
            write_json_atomic(notes_file, {"notes": _STORE.dump_python(new_notes)})
        notes = new_notes

    @server.tool(annotations=_PUT)
    async def put(
        key: Key,
        value: Annotated[str, Field(max_length=1_000_000, description="The text to store under key.")],
    ) -> PutResult:
        """Store a text note under a key, replacing any earlier value. Returns the key's new version."""
        version = notes[key].version + 1 if key in notes else 1
        commit(notes | {key: _Stored(value=value, version=version)})
        return PutResult(key=key, version=version)

    @server.tool(annotations=_READ)
    async def get(key: Key) -> GetResult:
        """Read the note stored under a key. A missing key is not an error: found is false, value null."""
        note = notes.get(key)
        return GetResult(key=key, value=note.value if note else None, found=note is not None)

    @server.tool(annotations=_READ)
    async def list_keys(
        prefix: Annotated[str, Field(max_length=256, description="Only keys starting with this; '' = all.")] = "",
    ) -> KeyList:
        """List the keys of stored notes, optionally only those starting with a prefix, alphabetically."""
        return KeyList(keys=sorted(k for k in notes if k.startswith(prefix)))

    @server.tool(annotations=_DELETE)
    async def delete(key: Key) -> DeleteResult:
        """Delete the note stored under a key. Deleting a missing key is not an error: deleted is false.

        A key written again after deletion starts over at version 1.
        """
        if key not in notes:
            return DeleteResult(key=key, deleted=False)
        commit({k: v for k, v in notes.items() if k != key})
        return DeleteResult(key=key, deleted=True)

    return server


def _notes_file_from_env() -> Path | None:
    value = os.environ.get("NOTES_FILE")
    return Path(value) if value else None


server = build_server(_notes_file_from_env())

if __name__ == "__main__":
    server.run()
