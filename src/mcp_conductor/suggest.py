"""Did-you-mean suggestions, the same way for config keys, tool ids, step ids, inputs and fields."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

DEFAULT_CUTOFF = 0.6


def close_matches(
    word: object, candidates: Iterable[object], *, n: int = 3, cutoff: float = DEFAULT_CUTOFF
) -> tuple[str, ...]:
    """Up to ``n`` of ``candidates`` that look like ``word``, best first (``difflib``'s similarity ratio)."""
    return tuple(difflib.get_close_matches(str(word), [str(c) for c in candidates], n=n, cutoff=cutoff))


def did_you_mean(word: object, candidates: Iterable[object], *, cutoff: float = DEFAULT_CUTOFF) -> str:
    """`` (did you mean "x"?)`` for the closest candidate, or ``""`` when none is close."""
    close = close_matches(word, candidates, n=1, cutoff=cutoff)
    return f' (did you mean "{close[0]}"?)' if close else ""
