"""Taking a slot of an ``anyio.CapacityLimiter`` on the hot path."""

from __future__ import annotations

import anyio


async def acquire(limiter: anyio.CapacityLimiter | None) -> None:
    """Take a token of ``limiter`` (None: no limit). A free token is taken without a trip through the event
    loop (``CapacityLimiter.acquire`` always yields once); the caller's next await is its checkpoint."""
    if limiter is None:
        return
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        await limiter.acquire()
