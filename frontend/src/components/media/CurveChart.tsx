// Curves of a chart preset (line, scatter, line_series, ROC, PR) drawn with uPlot: every curve keeps
// its own x values (the points of all curves merged on one x axis, gaps spanned).
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatNumber } from "../../lib/format";
import { useTheme } from "../../lib/hooks";
import type { Curve } from "../../lib/media";

export interface ColoredCurve extends Curve {
  color: string;
}

/** All curves' points on one sorted x array; each curve's y is null where another curve's point is. */
export function mergeCurves(curves: Curve[]): uPlot.AlignedData {
  const points: { x: number; y: number; c: number; i: number }[] = [];
  curves.forEach((curve, c) => curve.x.forEach((x, i) => points.push({ x, y: curve.y[i] ?? NaN, c, i })));
  points.sort((a, b) => a.x - b.x || a.c - b.c || a.i - b.i);
  const xs = points.map((p) => p.x);
  const ys = curves.map((_, c) => points.map((p) => (p.c === c ? p.y : null)));
  return [xs, ...ys] as uPlot.AlignedData;
}

export function CurveChart({ curves, xLabel, yLabel, scatter = false, unit = false, label }: { curves: ColoredCurve[]; xLabel: string; yLabel: string; scatter?: boolean; unit?: boolean; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  const theme = useTheme();
  useEffect(() => {
    const element = box.current;
    if (!element || !curves.length) return undefined;
    const styles = getComputedStyle(element);
    const text = styles.getPropertyValue("--muted").trim() || "#666";
    const grid = styles.getPropertyValue("--grid").trim() || "#ddd";
    const axis = (name: string): uPlot.Axis => ({ label: name, stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, values: (_u, ticks) => ticks.map((t) => formatNumber(t)) });
    const options: uPlot.Options = {
      width: Math.max(240, element.clientWidth),
      height: 230,
      scales: { x: { time: false, ...(unit ? { range: [0, 1] as uPlot.Range.MinMax } : {}) }, y: unit ? { range: [0, 1.02] as uPlot.Range.MinMax } : {} },
      axes: [axis(xLabel), axis(yLabel)],
      legend: { show: curves.length > 1, live: false },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: xLabel },
        ...curves.map((curve) => ({
          label: curve.name,
          stroke: curve.color,
          width: scatter ? 0 : 2,
          spanGaps: true,
          points: scatter ? { show: true, size: 5, fill: curve.color, stroke: curve.color } : { show: false },
          ...(scatter ? { paths: () => null } : {}),
        })),
      ],
    };
    const chart = new uPlot(options, mergeCurves(curves), element);
    element.dataset.drawn = String(curves.length);
    const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(240, element.clientWidth), height: 230 }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      chart.destroy();
    };
  }, [curves, xLabel, yLabel, scatter, unit, theme]);
  return <div ref={box} class="media-curves" role="img" aria-label={label} />;
}
