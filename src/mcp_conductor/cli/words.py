"""Words for people: plurals without "(s)", and text cut at a word boundary with an ellipsis."""

from __future__ import annotations

ELLIPSIS = "…"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 server``, ``2 servers``, ``0 problems``; ``many`` for irregular plurals."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def shorten(text: str, width: int) -> str:
    """``text`` on one line, whitespace collapsed, cut to at most ``width`` characters at a word boundary, with
    "…" where it was cut. A single word longer than the space (a path, a JSON value without spaces) is cut
    inside it rather than dropped.

    >>> shorten("read the complete contents of a file", 20)
    'read the complete…'
    """
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    if width <= 1:
        return ELLIPSIS[:width]
    room = line[: width - 1]
    cut = room.rstrip()
    if line[width - 1] != " " and " " in cut:
        head = cut.rsplit(" ", 1)[0].rstrip(" ,;:")
        if len(head) >= width // 2:  # keep the cut at a space unless that drops half the room
            cut = head
    return cut.rstrip() + ELLIPSIS
