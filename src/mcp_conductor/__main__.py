"""Entry point: ``mcp-conductor`` and ``python -m mcp_conductor``."""

from __future__ import annotations

import sys

from mcp_conductor.cli import main as _main


def main() -> None:
    sys.exit(_main())


if __name__ == "__main__":
    main()
