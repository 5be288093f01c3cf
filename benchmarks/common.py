"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import gzip
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def make_file(src: Path, dst: Path, n_lines: int) -> int:
    """Write `n_lines` lines to `dst` (gzip, fast level) by repeating the lines of `src`."""
    lines = [ln for ln in gzip.open(src, "rb").read().splitlines() if ln.strip()]
    written = 0
    with gzip.open(dst, "wb", compresslevel=1) as f:
        while written < n_lines:
            chunk = lines[: n_lines - written]
            f.write(b"\n".join(chunk) + b"\n")
            written += len(chunk)
    return written


def print_table(rows: list[list[str]], baseline: str = "baseline",
                ratio: str = "higher = recpipe faster") -> None:
    """The side-by-side results table the LLM benchmarks end with (markdown, for the README)."""
    print(f"| measurement | recpipe | {baseline} | ratio ({ratio}) |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
