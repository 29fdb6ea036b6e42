"""Tiny JSON-file persistence for the demo servers (notes, latency).

Writes are atomic: the new content goes to a temp file in the same directory, which then replaces the old
file, so a reader (or a server killed mid-write) never sees half a file. ``update_json`` adds an exclusive
lock around read-modify-write, so two processes sharing one file do not lose each other's updates.

These functions block; they are called from async tools on purpose, without an ``await`` between read and
write, so concurrent calls in one process cannot interleave. The files are a few hundred bytes.
"""

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock, atomic replace still holds
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object stored at ``path``, or ``{}`` if the file does not exist.

    Raises:
        ValueError: the file is not valid JSON or does not hold a JSON object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, not {type(data).__name__}")
    return data


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically (temp file in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)  # os.replace: atomic on POSIX and Windows
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_json(path: Path, change: Callable[[dict[str, Any]], T]) -> T:
    """Read ``path``, let ``change`` mutate the object, write it back atomically, return ``change``'s result.

    Raises:
        ValueError: the existing file is not a JSON object.
    """
    with _locked(path):
        data = read_json(path)
        result = change(data)
        write_json_atomic(path, data)
        return result
