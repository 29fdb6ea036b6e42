"""When a failed step is tried again, and how long it waits first.

Retries are bounded (``retry.attempts`` counts every try) with exponential backoff and full jitter: before try
n+1 the step sleeps a uniform random time in [0, min(max_backoff_s, backoff_s * 2**(n-1))]. By default only
transient failures (timeout, unavailable, connection lost) are retried, and only for tools annotated read-only
or idempotent: repeating a write that may have happened is the caller's decision, made by setting
``retry.on`` explicitly. The sleep and the random source are injected so tests need not wait.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from mcp_conductor.backoff import Backoff
from mcp_conductor.client_pool.catalog import ToolInfo
from mcp_conductor.server.planning.models import RetryPolicy


def backoff_delay(policy: RetryPolicy, failed_tries: int, rand: Callable[[], float] = random.random) -> float:
    """The sleep before the next try, after ``failed_tries`` (>= 1) failures."""
    return Backoff(policy.backoff_s, policy.max_backoff_s).delay(failed_tries, rand)


def should_retry(policy: RetryPolicy, tool: ToolInfo | None, kind: str, tries: int) -> bool:
    """Whether a failure of ``kind`` after ``tries`` tries gets another try."""
    if tries >= policy.attempts or kind not in policy.kinds:
        return False
    safe = tool is not None and (tool.read_only or tool.idempotent)
    return policy.on is not None or safe
