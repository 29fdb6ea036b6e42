import random
from datetime import UTC, datetime

import pytest

from mcp_conductor.server.execution import engine
from mcp_conductor.server.execution.engine import new_run_id, now_iso


def test_now_iso_reads_like_datetime_isoformat_with_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    # Mid-millisecond instants (no float rounding can tip them over a boundary), across many seconds and days.
    instants = [rng.randrange(0, 4_000_000_000_000) / 1000 + 0.0005 for _ in range(2000)]
    instants += [1_764_093_600.9995, 1_764_093_601.0005, 1_764_093_599.0005]  # around a second's rollover
    for t in instants:
        monkeypatch.setattr(engine.time, "time", lambda t=t: t)
        assert now_iso() == datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds"), t


def test_now_iso_is_the_current_time() -> None:
    before = datetime.now(UTC)
    stamp = datetime.fromisoformat(now_iso())
    after = datetime.now(UTC)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= stamp <= after


def test_run_ids_are_unique_and_start_with_their_date() -> None:
    ids = [new_run_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("run_2") for i in ids)
