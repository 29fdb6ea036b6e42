from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_conductor.client_pool.catalog import ServerName, ToolInfo
from mcp_conductor.server.execution.retry import backoff_delay, should_retry
from mcp_conductor.server.planning.models import RetryPolicy


def tool(**annotations: Any) -> ToolInfo:
    return ToolInfo(server=ServerName("s"), name="t", annotations=annotations or None)


READ_ONLY = tool(readOnlyHint=True)
IDEMPOTENT = tool(idempotentHint=True)
WRITE = tool(readOnlyHint=False, idempotentHint=False)


def test_with_the_top_draw_each_delay_doubles_until_the_cap():
    policy = RetryPolicy(attempts=6, backoff_s=0.5, max_backoff_s=3.0)
    assert [backoff_delay(policy, n, lambda: 1.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_full_jitter_scales_the_delay_by_the_draw():
    policy = RetryPolicy(attempts=3, backoff_s=2.0, max_backoff_s=10.0)
    assert backoff_delay(policy, 2, lambda: 0.25) == 1.0
    assert backoff_delay(policy, 2, lambda: 0.0) == 0.0


def test_a_zero_backoff_never_waits():
    policy = RetryPolicy(attempts=5, backoff_s=0.0, max_backoff_s=0.0)
    assert backoff_delay(policy, 4, lambda: 1.0) == 0.0


@given(
    backoff=st.floats(0, 5),
    extra=st.floats(0, 30),
    failed=st.integers(1, 60),
    draw=st.floats(0, 1, exclude_max=True),
)
def test_a_delay_stays_within_zero_and_the_cap(backoff: float, extra: float, failed: int, draw: float):
    policy = RetryPolicy(attempts=10, backoff_s=backoff, max_backoff_s=backoff + extra)
    assert 0.0 <= backoff_delay(policy, failed, lambda: draw) <= policy.max_backoff_s


@pytest.mark.parametrize("kind", ["timeout", "unavailable", "connection_lost"])
@pytest.mark.parametrize("info", [READ_ONLY, IDEMPOTENT])
def test_transient_failures_of_read_only_or_idempotent_tools_are_retried_by_default(kind: str, info: ToolInfo):
    assert should_retry(RetryPolicy(attempts=2), info, kind, tries=1)


@pytest.mark.parametrize("kind", ["tool_error", "protocol_error"])
def test_non_transient_failures_are_not_retried_by_default(kind: str):
    assert not should_retry(RetryPolicy(attempts=3), READ_ONLY, kind, tries=1)


@pytest.mark.parametrize("info", [WRITE, tool(), None])
def test_a_tool_not_known_to_be_safe_to_repeat_is_not_retried_by_default(info: ToolInfo | None):
    assert not should_retry(RetryPolicy(attempts=3), info, "timeout", tries=1)


def test_retry_on_opts_in_to_the_listed_kinds_even_for_writes():
    policy = RetryPolicy(attempts=3, on=("tool_error", "timeout"))
    assert should_retry(policy, WRITE, "tool_error", tries=1)
    assert should_retry(policy, WRITE, "timeout", tries=2)
    assert not should_retry(policy, WRITE, "unavailable", tries=1)  # not listed
    assert not should_retry(policy, READ_ONLY, "connection_lost", tries=1)  # listing replaces the default kinds


def test_the_attempts_bound_counts_every_try():
    policy = RetryPolicy(attempts=3)
    assert [should_retry(policy, READ_ONLY, "timeout", tries=n) for n in (1, 2, 3, 4)] == [True, True, False, False]
    assert not should_retry(RetryPolicy(), READ_ONLY, "timeout", tries=1)  # attempts=1: no retry
