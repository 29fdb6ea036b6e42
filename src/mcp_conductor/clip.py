"""Cutting text for people and models: at a word boundary, with an ellipsis, never mid-word when avoidable."""

from __future__ import annotations

ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters; else its longest prefix that ends at a word boundary (or, for
    one long word, at ``limit``), plus ``…``, ``limit`` characters at most in all."""
    if len(text) <= limit:
        return text
    room = max(0, limit - len(ELLIPSIS))
    head = text[:room]
    cut = head.rstrip()
    if room < len(text) and not text[room].isspace():
        space = cut.rfind(" ")
        if space > room // 2:
            cut = cut[:space].rstrip()
    return cut.rstrip(" ,;:.-") + ELLIPSIS
