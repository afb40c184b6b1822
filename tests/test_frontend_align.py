"""The web app's chart alignment (frontend/src/lib/align.ts), run in real Chromium.

Many downsampled runs on one chart are placed on a grid of two slots per column instead of the
exact union of their x values; what is drawn must keep every run's extremes, in order, and its gaps.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium

REPO = Path(__file__).resolve().parents[1]
FRONTEND = REPO / "frontend"

# Two runs of 3,000 points (a spike and a dip in the first, a gap in the second) and a short third.
CASES = """
(() => {
  const rng = (seed) => () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const r = rng(7);
  const xsA = Array.from({ length: 3000 }, (_, i) => i * 2);
  const ysA = xsA.map(() => r());
  ysA[1234] = 50;
  ysA[2345] = -50;
  const xsB = Array.from({ length: 3000 }, (_, i) => i * 2 + 1);
  const ysB = xsB.map(() => r() + 1);
  ysB[100] = null;
  const xsC = [0, 10, 5000];
  const ysC = [3, 4, 5];
  return { tables: [[xsA, ysA], [xsB, ysB], [xsC, ysC]] };
})()
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    esbuild = FRONTEND / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        pytest.fail("frontend/node_modules is missing: run scripts/build-frontend.sh (npm ci)")
    out = tmp_path_factory.mktemp("align") / "align.js"
    subprocess.run(
        [str(esbuild), "src/lib/align.ts", "--bundle", "--format=iife", "--global-name=align", f"--outfile={out}"],
        cwd=FRONTEND,
        check=True,
        capture_output=True,
    )
    return out.read_text()


@pytest.fixture(scope="module")
def page(bundle: str) -> Iterator[Any]:
    with chromium() as browser:
        tab = browser.new_page()
        tab.set_content("<!doctype html><title>align</title>")
        tab.add_script_tag(content=bundle)
        yield tab


def test_large_charts_keep_each_runs_extremes_order_and_gaps_on_the_grid(page: Any) -> None:
    result = page.evaluate(
        f"""() => {{
          const {{ tables }} = {CASES};
          const out = align.alignTables(tables, 500);
          const plain = (col) => Array.from(col, (v) => (v === undefined ? "u" : v));
          return {{ x: out[0], cols: out.slice(1).map(plain), len: out.length }};
        }}"""
    )
    x, cols = result["x"], result["cols"]
    assert result["len"] == 4 and len(x) == 1500, "three slots per column, one x array shared by three runs"
    assert x == sorted(x) and x[0] >= 0 and x[-1] <= 6000
    a, b, c = cols
    a_values = [v for v in a if v not in ("u", None)]
    assert max(a_values) == 50 and min(a_values) == -50, "a run's spike and dip survive"
    assert a_values.index(50) < a_values.index(-50), "points stay in x order"
    assert None in b, "a gap (null) stays a gap"
    assert [v for v in c if v != "u"] == [3, 4, 5]
    # Every drawn value is one of the run's own points.
    source = page.evaluate(f"() => {CASES}.tables[0][1]")
    assert set(a_values) <= set(source)


def test_small_charts_use_the_exact_union(page: Any) -> None:
    out = page.evaluate(
        """() => align.alignTables([[[1, 2, 4], [10, 20, 40]], [[2, 3], [7, 8]]]).map((c) => Array.from(c, (v) => (v === undefined ? "u" : v)))"""
    )
    assert out == [[1, 2, 3, 4], [10, 20, "u", 40], ["u", 7, 8, "u"]]
