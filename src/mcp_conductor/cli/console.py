"""Rich consoles for people: colors and boxes only on a terminal without ``NO_COLOR``, plain text otherwise.

Results go to stdout (``out()``), progress and notes to stderr (``err()``). A console that is not a terminal
writes no escape codes and gets a wide line, so piped output stays greppable.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table

PIPE_WIDTH = 200


def color_allowed() -> bool:
    return "NO_COLOR" not in os.environ


def make_console(stream: TextIO) -> Console:
    terminal = stream.isatty()
    return Console(
        file=stream,
        no_color=not color_allowed(),
        highlight=False,
        emoji=False,
        soft_wrap=not terminal,
        width=None if terminal else PIPE_WIDTH,
    )


def out() -> Console:
    return make_console(sys.stdout)


def err() -> Console:
    return make_console(sys.stderr)


def plain(console: Console) -> bool:
    """Plain text: not a terminal, or ``NO_COLOR``."""
    return not console.is_terminal or console.no_color


def table(console: Console, *headers: str, right: tuple[str, ...] = (), no_wrap: tuple[str, ...] = ()) -> Table:
    """A table that is boxed on a colour terminal and whitespace-separated columns otherwise; ``no_wrap``
    columns (ids) are never broken across lines."""
    t = Table(
        box=None if plain(console) else box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="" if plain(console) else "bold",
    )
    for header in headers:
        t.add_column(header, justify="right" if header in right else "left", overflow="fold", no_wrap=header in no_wrap)
    return t


def style(console: Console, name: str) -> str:
    """``name`` on a colour terminal, else no style."""
    return "" if plain(console) else name


STATUS_STYLES = {
    "ready": "green", "succeeded": "green", "done": "green",
    "failed": "red", "timeout": "red", "timed_out": "red", "invalid": "red",
    "unknown": "red",
    "running": "cyan", "connecting": "yellow", "reconnecting": "yellow", "partial": "yellow",
    "cancelled": "yellow", "interrupted": "yellow", "skipped": "dim", "waiting": "dim", "disabled": "dim",
}  # fmt: skip


def print_table(console: Console, renderable: Table) -> None:
    """Print a table; in plain mode without the trailing spaces rich pads its last column with."""
    if not plain(console):
        console.print(renderable)
        return
    with console.capture() as captured:
        console.print(renderable)
    console.file.write("\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n")
    console.file.flush()
