"""The run store's connections: two ``sqlite3`` connections to ``<state_dir>/runs.db``, the worker thread
they run in, opening (directory, migrations, version check) and closing, and ``StoreError`` with the
translation of every ``sqlite3`` failure into it.

The main connection is used only from worker threads, one call at a time (a ``CapacityLimiter(1)`` owned by
the store), for listings, exports, imports, pruning and checkpoints. The quick one serves the executor's small
point reads and writes (a step, a run, a plan) on the event loop's thread with a busy timeout of 0, and hands
a call to the worker thread whenever the lock is taken, so the loop never waits on another writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Self, TypeVar

import anyio
import anyio.to_thread

from mcp_conductor.errors import ConductorError
from mcp_conductor.server.store import migrations, schema
from mcp_conductor.server.store.state_dir import STATE_DIR_ENV

DB_FILENAME = "runs.db"
DEFAULT_BUSY_TIMEOUT_MS = 5000

_ELSEWHERE = f"--state-dir or {STATE_DIR_ENV}"
_WRITABLE_HINT = f"set {_ELSEWHERE} to a writable directory"

T = TypeVar("T")


class StoreError(ConductorError):
    """The run store cannot be opened, read or written (permissions, a lock, a corrupt file, no such run)."""

    kind = "store_error"


def _primary_code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code of an error (extended codes carry it in their low byte)."""
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def _translate(exc: sqlite3.Error, path: Path) -> StoreError:
    code = _primary_code(exc)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(
            f"the run store {path} is locked by another process ({exc})",
            hint="another mcp-conductor is writing to the same state directory; retry, or give this one "
            f"its own with {_ELSEWHERE}",
        )
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_IOERR):
        return StoreError(f"cannot write the run store {path} ({exc})", hint=_WRITABLE_HINT)
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return StoreError(
            f"the run store {path} is corrupt or not a SQLite database ({exc})",
            hint=f"move the file aside (an empty store is created in its place), or use {_ELSEWHERE}",
        )
    if code == sqlite3.SQLITE_FULL:
        return StoreError(f"the disk holding the run store {path} is full", hint=_WRITABLE_HINT)
    return StoreError(f"run store error on {path}: {exc}")


def _make_connection(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the state directory {path.parent} ({exc.strerror or exc})", hint=_WRITABLE_HINT
        ) from exc
    conn = schema.connect(path, busy_timeout_ms)
    try:
        found = migrations.migrate(conn)
    except BaseException:
        conn.close()
        raise
    if found > migrations.SCHEMA_VERSION:
        conn.close()
        raise StoreError(
            f"the run store {path} has schema version {found}, "
            f"newer than this mcp-conductor's {migrations.SCHEMA_VERSION}",
            hint=f"upgrade mcp-conductor, or use a separate store with {_ELSEWHERE}",
        )
    return conn


CHECKPOINT_EVERY = 256  # quick calls between two WAL checkpoints (which run in the worker thread)


class StoreConnections:
    """The store file's two connections and its worker thread (``RunStore`` adds the records); see ``open``
    and ``connect``."""

    def __init__(
        self, conn: sqlite3.Connection, quick: sqlite3.Connection, path: Path, limiter: anyio.CapacityLimiter
    ) -> None:
        self._conn: sqlite3.Connection | None = conn  # worker threads only, one at a time (the limiter)
        self._quick_conn: sqlite3.Connection | None = quick  # the event loop's thread only; busy timeout 0
        self._limiter = limiter
        self._quick_calls = 0
        self.path = path

    @classmethod
    async def connect(cls, state_dir: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Self:
        """Open the store, creating the directory, the file and the schema as needed; ``close()`` it after.

        Raises:
            StoreError: the directory is not writable, the file is corrupt or from a newer version, or another
                process holds the write lock longer than ``busy_timeout_ms`` while the schema is created.
        """
        path = Path(state_dir) / DB_FILENAME
        limiter = anyio.CapacityLimiter(1)
        try:
            conn = await anyio.to_thread.run_sync(_make_connection, path, busy_timeout_ms, limiter=limiter)
            conn.execute("PRAGMA wal_autocheckpoint = 1000")  # this one may checkpoint: it runs in threads
            quick = await anyio.to_thread.run_sync(schema.connect, path, 0, limiter=limiter)
        except sqlite3.Error as exc:
            raise _translate(exc, path) from exc
        return cls(conn, quick, path, limiter)

    @classmethod
    @asynccontextmanager
    async def open(cls, state_dir: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> AsyncIterator[Self]:
        """``async with RunStore.open(state_dir) as store:``, closed on the way out.

        Raises:
            StoreError: as ``connect``.
        """
        store = await cls.connect(state_dir, busy_timeout_ms=busy_timeout_ms)
        try:
            yield store
        finally:
            with anyio.CancelScope(shield=True):
                await store.close()

    async def close(self) -> None:
        """Close after the calls in flight; later calls raise ``StoreError``. Idempotent."""

        def close() -> None:
            for conn in (self._quick_conn, self._conn):
                if conn is not None:
                    conn.close()
            self._quick_conn = self._conn = None

        await anyio.to_thread.run_sync(close, limiter=self._limiter)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in a worker thread, one at a time; sqlite3 errors become ``StoreError``."""

        def call() -> T:
            if self._conn is None:
                raise StoreError(f"the run store {self.path} is closed")
            return fn(self._conn)

        try:
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path) from exc

    async def call(self, fn: Callable[[sqlite3.Connection], T], *, quick: bool = False) -> T:
        """``fn(connection)`` in the worker thread (``quick``: a point read on the loop's thread, see ``_quick``),
        for the store's other tables (``chains.ChainStore``).

        Raises:
            StoreError: as every store call.
        """
        return await (self._quick(fn) if quick else self._run(fn))

    async def _quick(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """A small read or write on the event loop's thread, through a second connection whose busy timeout is
        0 and which never checkpoints; if anyone holds the lock (a worker thread, another process), the call
        goes to the worker thread, which waits as usual.

        Only for point reads and writes of a few rows (a step, a run, a plan, the metrics of a run's tools):
        a worker-thread hop costs ~10x their SQLite work (about 150 us against 15 us), which would be most of
        the executor's overhead on a sequential chain. Listings, exports and pruning stay in the thread.
        """
        conn = self._quick_conn
        if conn is None:
            return await self._run(fn)
        try:
            result = fn(conn)
        except sqlite3.Error as exc:
            if _primary_code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return await self._run(fn)  # another writer holds the lock: wait for it in the thread
            raise _translate(exc, self.path) from exc
        self._quick_calls += 1
        if self._quick_calls % CHECKPOINT_EVERY == 0:
            await self._run(lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
        return result
