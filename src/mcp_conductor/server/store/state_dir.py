"""Where mcp-conductor keeps its state, and whether the process that owns a run is still alive."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

STATE_DIR_ENV = "MCP_CONDUCTOR_STATE_DIR"


def default_state_dir() -> Path:
    """``$MCP_CONDUCTOR_STATE_DIR`` if set, else the user's state directory (``platformdirs``)."""
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_state_dir("mcp-conductor"))


def resolve_state_dir(explicit: str | os.PathLike[str] | None) -> Path:
    """The state directory to use: ``explicit`` (``--state-dir``) beats the environment beats the default."""
    if explicit:
        return Path(explicit).expanduser()
    return default_state_dir()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (on POSIX, signal 0 checks without sending anything)."""
    if pid <= 0:
        return False  # os.kill(0, ...) would address our own process group
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it just belongs to someone else
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed server that its parent has not reaped yet still answers signal 0; on Linux /proc tells."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - os.kill(pid, 0) would terminate it on Windows
    import ctypes

    still_active = 259
    query_limited_information = 0x1000
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == still_active
    finally:
        kernel32.CloseHandle(handle)
