"""Capped exponential backoff with full jitter: the pool's reconnects and the executor's retries both wait so."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Before try n+1 (after ``n`` failures) wait a uniform random time in [0, min(cap_s, base_s * 2**(n-1))]."""

    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        ceiling: float = min(self.cap_s, self.base_s * 2.0 ** max(0, failures - 1))
        return float(rand() * ceiling)
