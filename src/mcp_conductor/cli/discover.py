"""``mcp-conductor discover``: rank tools offline against an exported catalog (no connections)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mcp_conductor.cli.common import EXIT_OK
from mcp_conductor.cli.words import shorten
from mcp_conductor.errors import ConfigError

if TYPE_CHECKING:  # the command imports these when it runs, not when the parser is built
    from mcp_conductor.client_pool.catalog import ToolInfo

LINE_WIDTH = 100


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "discover",
        help="rank tools for a query against an exported catalog file (offline)",
        description="Rank the tools of a catalog file (from `tools --json`) for a query, without connecting.",
        epilog=(
            "examples:\n"
            "  mcp-conductor discover --catalog catalog.json 'convert celsius to fahrenheit'\n"
            "  printf 'read a file\\nsend an email\\n' | mcp-conductor discover --catalog catalog.json --batch"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--catalog",
        required=True,
        metavar="FILE",
        help="JSON list of {id, server, name, description, inputSchema} records",
    )
    p.add_argument("--top-k", type=int, default=10, metavar="K", help="how many results (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--batch", action="store_true", help="read one query per line from stdin; print one JSON line per query"
    )
    p.add_argument("query", nargs="?", default=None, help="the task, in plain words")
    p.set_defaults(func=run)


def load_catalog(path: str) -> list[ToolInfo]:
    """Raises:
    ConfigError: the file is missing, not JSON, or not a list of tool records.
    """
    from mcp_conductor.client_pool.catalog import ToolInfo

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"catalog file not found: {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"cannot read catalog {path}: {exc}", hint="export one with `mcp-conductor tools --json > catalog.json`"
        ) from exc
    if not isinstance(raw, list):
        raise ConfigError(f"catalog {path} must be a JSON list of tool records")
    tools: list[ToolInfo] = []
    for i, record in enumerate(raw):
        if not isinstance(record, dict):
            raise ConfigError(f"catalog {path}: entry {i} is not an object")
        try:
            tools.append(ToolInfo.from_record(record))
        except ValueError as exc:
            raise ConfigError(f"catalog {path}: entry {i}: {exc}") from exc
    return tools


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise ConfigError("--top-k must be at least 1")
    from mcp_conductor.server.discovery.index import ToolIndex

    index = ToolIndex.build(load_catalog(args.catalog))
    if args.batch:
        for line in sys.stdin:
            query = line.rstrip("\n")
            if not query.strip():
                continue
            ids = [hit.tool.id for hit in index.search(query, top_k=args.top_k)]
            print(json.dumps({"query": query, "results": ids}), flush=True)
        return EXIT_OK
    if not args.query:
        raise ConfigError("give a QUERY, or --batch to read queries from stdin")
    hits = index.search(args.query, top_k=args.top_k)
    if args.json:
        print(
            json.dumps(
                {
                    "query": args.query,
                    "results": [
                        {"id": h.tool.id, "score": round(h.score, 4), "description": h.tool.description} for h in hits
                    ],
                },
                indent=2,
            )
        )
    else:
        width = max((len(h.tool.id) for h in hits), default=0)
        for rank, hit in enumerate(hits, 1):
            summary = shorten(hit.tool.description, max(20, LINE_WIDTH - width - 16))
            print(f"{rank:2d}. {hit.tool.id:<{width}}  {hit.score:6.2f}  {summary}".rstrip())
    return EXIT_OK
