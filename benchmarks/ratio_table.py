"""The table the ratio benchmarks print: one row per measure, its baseline, the ratio and the target."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    value: str
    baseline: str
    ratio: float | None
    target: str
    ok: bool | None


def print_table(rows: list[Row]) -> None:
    header = ("measure", "value", "baseline", "ratio", "target", "ok")
    cells = [
        (
            r.name,
            r.value,
            r.baseline,
            "" if r.ratio is None else f"{r.ratio:.3f}",
            r.target,
            "" if r.ok is None else ("yes" if r.ok else "NO"),
        )
        for r in rows
    ]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(line.format(*c))
