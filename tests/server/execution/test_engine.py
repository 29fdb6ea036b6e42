from datetime import UTC, datetime

from mcp_conductor.server.execution.engine import new_run_id
from mcp_conductor.server.store.records import now_iso


def test_now_iso_is_the_current_time() -> None:
    before = datetime.now(UTC)
    stamp = datetime.fromisoformat(now_iso())
    after = datetime.now(UTC)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= stamp <= after


def test_run_ids_are_unique_and_start_with_their_date() -> None:
    ids = [new_run_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("run_2") for i in ids)
