"""CLI start-up benchmark: how long ``--help`` takes, as a ratio to importing the MCP SDK in the same run.

Run ``python benchmarks/bench_cli.py``. Each command line runs ``--runs`` times in a fresh interpreter (the
rows interleaved, so a busy machine slows them alike); the table shows the median wall time and its ratio to
``python -c "import mcp"``. Target: ``mcp-conductor --help`` <= 0.5 of the SDK import (building the parser
imports nothing heavy; each command imports what it needs when it runs). ``python -c pass`` is the floor.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET_RATIO = 0.5
REFERENCE = "import mcp"
ROWS: tuple[tuple[str, list[str]], ...] = (
    ('python -c "pass"', [sys.executable, "-c", "pass"]),
    ('python -c "import mcp"', [sys.executable, "-c", "import mcp"]),
    ("mcp-conductor --help", [sys.executable, "-m", "mcp_conductor", "--help"]),
    ("mcp-conductor run --help", [sys.executable, "-m", "mcp_conductor", "run", "--help"]),
    ("mcp-conductor doctor --help", [sys.executable, "-m", "mcp_conductor", "doctor", "--help"]),
    ("mcp-conductor runs show --help", [sys.executable, "-m", "mcp_conductor", "runs", "show", "--help"]),
)


def wall_ms(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs per command line (default 9)")
    args = parser.parse_args()
    for _, argv in ROWS:  # warm the file cache and the bytecode once
        wall_ms(argv)
    times: dict[str, list[float]] = {label: [] for label, _ in ROWS}
    for _ in range(args.runs):
        for label, argv in ROWS:
            times[label].append(wall_ms(argv))
    medians = {label: statistics.median(ms) for label, ms in times.items()}
    reference = medians[f'python -c "{REFERENCE}"']
    width = max(len(label) for label in medians)
    print(f"{'command':<{width}}  {'median ms':>9}  {'/ import mcp':>12}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 12}")
    for label, ms in medians.items():
        print(f"{label:<{width}}  {ms:>9.0f}  {ms / reference:>12.2f}")
    ratio = medians["mcp-conductor --help"] / reference
    verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
    print(f"\ntarget: mcp-conductor --help <= {TARGET_RATIO} x import mcp -> {ratio:.2f} ({verdict})")
    print(f"{args.runs} runs of each, interleaved; median wall time of a fresh interpreter")


if __name__ == "__main__":
    main()
