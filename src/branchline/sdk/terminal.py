"""What branchline prints: a short block at init, a summary with sparklines at finish."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["Terminal", "sparkline"]

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 40) -> str:
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return ""
    if len(finite) > width:
        step = len(finite) / width
        finite = [finite[int(i * step)] for i in range(width)]
    low, high = min(finite), max(finite)
    span = high - low
    if span == 0:
        return _BARS[3] * len(finite)
    return "".join(_BARS[min(7, int((v - low) / span * 7.999))] for v in finite)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Terminal:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def log(self, message: str) -> None:
        if not self.quiet:
            print(f"branchline: {message}", file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        # Warnings show even when quiet: they say data was dropped or something failed.
        print(f"branchline: WARNING {message}", file=sys.stderr, flush=True)

    def footer(self, history: dict[str, Sequence[float]], summary: dict[str, Any], lines: Sequence[str]) -> None:
        if self.quiet:
            return
        out = []
        if history:
            out.append("Run history:")
            width = max(len(k) for k in history)
            out.extend(f"  {k.rjust(width)} {sparkline(v)}" for k, v in history.items())
        scalars = {k: v for k, v in summary.items() if not k.startswith("_") and not isinstance(v, (dict, list))}
        if scalars:
            out.append("Run summary:")
            width = max(len(k) for k in scalars)
            out.extend(f"  {k.rjust(width)} {_format(v)}" for k, v in list(scalars.items())[:20])
        out.extend(lines)
        for line in out:
            print(f"branchline: {line}", file=sys.stderr)
        sys.stderr.flush()
