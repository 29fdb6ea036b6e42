"""Entry point: ``mcp-conductor`` and ``python -m mcp_conductor``."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        # Ctrl-C while the CLI is still importing should not print a traceback either.
        from mcp_conductor.cli import main as cli_main
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(cli_main())


if __name__ == "__main__":
    main()
