"""Taking a slot of an ``anyio.CapacityLimiter`` on the hot path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


async def acquire(
    limiter: anyio.CapacityLimiter | None, *, before_waiting: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Take a token of ``limiter`` (None: no limit). A free token is taken without a trip through the event
    loop (``CapacityLimiter.acquire`` always yields once); the caller's next await is its checkpoint. When no
    token is free, ``before_waiting()`` runs first."""
    if limiter is None:
        return
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        if before_waiting is not None:
            await before_waiting()
        await limiter.acquire()
