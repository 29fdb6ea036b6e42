"""Values kept out of Temporal's history: a JSON file per value under ``<state dir>/blobs``, passed by reference.

Temporal refuses payloads above about 2 MB and warns above 512 KiB, and every step value in a workflow is in
its history; so an activity keeps a value whose JSON passes ``threshold_bytes`` (256 KiB) in a file and returns
``{"$conductor_blob": "RUN/NAME.json", "size_bytes": N}``. The workers and the front must share the directory
(the state directory of one machine, or a shared volume): the front reads the full values when it writes the
run store.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import anyio

from mcp_conductor.server.execution.temporal.protocol import BLOB_KEY, is_blob

DEFAULT_THRESHOLD_BYTES = 256 * 1024


class BlobStore:
    """The blob directory of one state directory."""

    def __init__(self, root: Path, *, threshold_bytes: int = DEFAULT_THRESHOLD_BYTES) -> None:
        self.root = root
        self.threshold_bytes = threshold_bytes

    async def keep(self, run_id: str, name: str, value: Any) -> Any:
        """``value`` itself when it is small, else a reference to the file it was written to."""
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode())
        if size <= self.threshold_bytes:
            return value
        relative = f"{_safe(run_id)}/{_safe(name)}-{secrets.token_hex(4)}.json"
        await anyio.to_thread.run_sync(self._write, relative, text)
        return {BLOB_KEY: relative, "size_bytes": size}

    async def resolve(self, value: Any) -> Any:
        """The full value behind a reference (a value that is not one is returned as it is).

        Raises:
            OSError: the blob file is missing or unreadable (the workers and the front do not share it).
        """
        if not is_blob(value):
            return value
        path = self.root / str(value[BLOB_KEY])
        text = await anyio.to_thread.run_sync(path.read_text, "utf-8")
        return json.loads(text)

    def _write(self, relative: str, text: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:120]
