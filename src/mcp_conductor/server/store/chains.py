"""Saved chains in the run store: one row per version (``saved_chains``), and which runs ran one (``chain_runs``).

The newest version of a name is the one saved last. Saving a version that exists is a no-op (versions are content
hashes), except that a changed description replaces the old one.

    chains = ChainStore(store)
    created = await chains.save(saved)          # False: that version existed already
    newest = await chains.get("notes-to-memory")
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from mcp_conductor.server.store.records import now_iso
from mcp_conductor.server.store.rows import dumps, loads
from mcp_conductor.server.store.schema import transaction
from mcp_conductor.server.store.store import RunStore

Effect = Literal["read_only", "writes", "destructive"]


@dataclass(frozen=True, slots=True)
class SavedChain:
    """One version of a saved chain, as the store keeps it. ``plan`` is the normalized plan's JSON dump;
    ``tools`` maps each downstream tool the plan calls to its inputSchema's fingerprint at save time; ``chains``
    are the chain references its steps use; ``effect`` is the worst effect of its steps."""

    name: str
    version: str
    description: str
    inputs_schema: Mapping[str, Any]
    plan: Mapping[str, Any]
    tools: Mapping[str, str] = field(default_factory=dict)
    chains: tuple[str, ...] = ()
    estimated_latency_ms: float | None = None
    effect: Effect = "writes"
    created_at: str = ""

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(self.plan.get("outputs") or ())

    def export(self) -> dict[str, Any]:
        """The chain as ``chains export`` writes it (``from_export`` reads it back)."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "inputs": dict(self.inputs_schema),
            "plan": dict(self.plan),
            "tools": dict(self.tools),
            "chains": list(self.chains),
            "estimated_latency_ms": self.estimated_latency_ms,
            "effect": self.effect,
            "created_at": self.created_at,
        }


SaveOutcome = Literal["created", "unchanged", "description_updated"]

_COLUMNS = (
    "name, version, description, inputs_json, plan_json, tools_json, chains_json, estimate_ms, effect, created_at"
)


def _row(chain: SavedChain) -> tuple[Any, ...]:
    return (
        chain.name,
        chain.version,
        chain.description,
        dumps(dict(chain.inputs_schema)),
        dumps(dict(chain.plan)),
        dumps(dict(chain.tools)),
        dumps(list(chain.chains)),
        chain.estimated_latency_ms,
        chain.effect,
        chain.created_at,
    )


def _chain(row: Sequence[Any]) -> SavedChain:
    name, version, description, inputs, plan, tools, chains, estimate, effect, created = row
    return SavedChain(
        name=name,
        version=version,
        description=description,
        inputs_schema=loads(inputs),
        plan=loads(plan),
        tools=loads(tools),
        chains=tuple(loads(chains)),
        estimated_latency_ms=estimate,
        effect=effect,
        created_at=created,
    )


@dataclass(frozen=True, slots=True)
class ChainRun:
    """A run of a saved chain; ``parent_run_id`` and ``parent_step_id`` are set for a sub-run."""

    run_id: str
    chain: str
    version: str
    parent_run_id: str | None = None
    parent_step_id: str | None = None
    item_index: int | None = None


class ChainStore:
    """The saved chains of one run store."""

    def __init__(self, store: RunStore) -> None:
        self.store = store

    async def save(self, chain: SavedChain) -> SaveOutcome:
        """Store a version; an existing one keeps its row (its description is updated if it changed).

        Raises:
            StoreError: the store cannot be written.
        """
        chain = chain if chain.created_at else replace(chain, created_at=now_iso())

        def write(c: sqlite3.Connection) -> SaveOutcome:
            with transaction(c):
                row = c.execute(
                    "SELECT description FROM saved_chains WHERE name = ? AND version = ?", (chain.name, chain.version)
                ).fetchone()
                if row is None:
                    c.execute(f"INSERT INTO saved_chains ({_COLUMNS}) VALUES ({', '.join('?' * 10)})", _row(chain))
                    return "created"
                if row[0] == chain.description:
                    return "unchanged"
                c.execute(
                    "UPDATE saved_chains SET description = ? WHERE name = ? AND version = ?",
                    (chain.description, chain.name, chain.version),
                )
                return "description_updated"

        return await self.store.call(write)

    async def get(self, name: str, version: str | None = None) -> SavedChain | None:
        """A version of ``name``, or its newest; None if there is none.

        Raises:
            StoreError: the store cannot be read.
        """
        if version is None:
            sql = f"SELECT {_COLUMNS} FROM saved_chains WHERE name = ? ORDER BY rowid DESC LIMIT 1"
            params: tuple[str, ...] = (name,)
        else:
            sql, params = f"SELECT {_COLUMNS} FROM saved_chains WHERE name = ? AND version = ?", (name, version)
        row = await self.store.call(lambda c: c.execute(sql, params).fetchone())
        return None if row is None else _chain(row)

    async def versions(self, name: str) -> list[SavedChain]:
        """Every version of ``name``, newest first.

        Raises:
            StoreError: the store cannot be read.
        """
        sql = f"SELECT {_COLUMNS} FROM saved_chains WHERE name = ? ORDER BY rowid DESC"
        return [_chain(row) for row in await self.store.call(lambda c: c.execute(sql, (name,)).fetchall())]

    async def newest(self) -> list[SavedChain]:
        """The newest version of every saved chain, by name.

        Raises:
            StoreError: the store cannot be read.
        """
        sql = (
            f"SELECT {_COLUMNS} FROM saved_chains WHERE rowid IN (SELECT MAX(rowid) FROM saved_chains GROUP BY name)"
            " ORDER BY name"
        )
        return [_chain(row) for row in await self.store.call(lambda c: c.execute(sql).fetchall())]

    async def generation(self) -> tuple[int, int]:
        """Changes whenever a chain is saved or deleted (by this process or another): for caches.

        Raises:
            StoreError: the store cannot be read.
        """
        sql = "SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM saved_chains"
        row = await self.store.call(lambda c: c.execute(sql).fetchone(), quick=True)
        return int(row[0]), int(row[1])

    async def delete(self, name: str, version: str | None = None) -> int:
        """Delete one version, or every version of ``name``; returns how many were deleted.

        Raises:
            StoreError: the store cannot be written.
        """
        sql = "DELETE FROM saved_chains WHERE name = ?" + ("" if version is None else " AND version = ?")
        params = (name,) if version is None else (name, version)

        def write(c: sqlite3.Connection) -> int:
            with transaction(c):
                return int(c.execute(sql, params).rowcount)

        return await self.store.call(write)

    async def record_run(self, run: ChainRun) -> None:
        """Remember that ``run.run_id`` ran a saved chain (kept if already recorded).

        Raises:
            StoreError: the store cannot be written.
        """
        row = (run.run_id, run.chain, run.version, run.parent_run_id, run.parent_step_id, run.item_index)
        sql = (
            "INSERT INTO chain_runs (run_id, chain, version, parent_run_id, parent_step_id, item_index)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING"
        )
        await self.store.call(lambda c: c.execute(sql, row))

    async def runs(self, *, chain: str | None = None, parent_run_id: str | None = None) -> list[ChainRun]:
        """Recorded runs of saved chains (those whose run still exists), newest first.

        Raises:
            StoreError: the store cannot be read.
        """
        where: list[str] = ["r.run_id IS NOT NULL"]
        params: list[str] = []
        if chain is not None:
            where.append("c.chain = ?")
            params.append(chain)
        if parent_run_id is not None:
            where.append("c.parent_run_id = ?")
            params.append(parent_run_id)
        sql = (
            "SELECT c.run_id, c.chain, c.version, c.parent_run_id, c.parent_step_id, c.item_index FROM chain_runs c"
            f" LEFT JOIN runs r ON r.run_id = c.run_id WHERE {' AND '.join(where)} ORDER BY r.started_at DESC"
        )
        rows = await self.store.call(lambda c: c.execute(sql, params).fetchall())
        return [ChainRun(*row) for row in rows]
