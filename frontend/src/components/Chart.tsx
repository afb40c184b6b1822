// One line chart (uPlot): many runs, EMA smoothing, log scale, drag-zoom with reset, a legend
// (toggleable; a click on an entry hides or shows its line), and a hover card with every visible
// run's value at the cursor. Single points and short series are drawn as markers.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { alignTables } from "../lib/align";
import { withAlpha } from "../lib/colors";
import { formatDuration, formatNumber } from "../lib/format";
import { useTheme } from "../lib/hooks";
import { ema } from "../lib/smooth";

export type XKind = "step" | "relative" | "wall" | "metric";

export interface ChartLine {
  id: string;
  label: string;
  color: string;
  x: (number | null)[];
  y: (number | null)[];
  /** A shaded band (e.g. a group's min–max) drawn behind the line, aligned with `x`. */
  band?: { lo: (number | null)[]; hi: (number | null)[] };
  /** A dash pattern in pixels (e.g. [6, 4]): tells apart several keys of one run on one chart. */
  dash?: number[];
}

interface Prepared {
  id: string;
  label: string;
  color: string;
  x: number[];
  raw: (number | null)[];
  shown: (number | null)[];
  band: { lo: (number | null)[]; hi: (number | null)[] } | null;
}

function compact(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${+(value / 1e9).toFixed(2)}G`;
  if (abs >= 1e6) return `${+(value / 1e6).toFixed(2)}M`;
  if (abs >= 1e4) return `${+(value / 1e3).toFixed(1)}k`;
  if (abs !== 0 && abs < 1e-3) return value.toExponential(1);
  return `${+value.toPrecision(4)}`;
}

/** Tick labels with as many decimals as the tick spacing needs (never "29.45, 29.45, 29.45"). */
function formatTicks(all: (number | null)[]): string[] {
  const ticks = all.filter((t): t is number => t !== null && Number.isFinite(t));
  if (ticks.length < all.length) {
    // Log scales leave gaps (null) between labelled ticks.
    return all.map((t) => (t === null || !Number.isFinite(t) ? "" : compact(t)));
  }
  if (ticks.length < 2) return ticks.map(compact);
  const step = Math.abs(ticks[1] - ticks[0]) || Math.abs(ticks[0]) || 1;
  const largest = Math.max(...ticks.map((t) => Math.abs(t)));
  if (largest >= 1e4 && step >= 1e3) {
    const [unit, suffix] = largest >= 1e9 ? [1e9, "G"] : largest >= 1e6 ? [1e6, "M"] : [1e3, "k"];
    const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step / unit))));
    return ticks.map((t) => `${(t / unit).toFixed(decimals)}${suffix}`);
  }
  if (largest < 1e-3 && largest > 0) return ticks.map((t) => (t === 0 ? "0" : t.toExponential(Math.max(0, Math.min(4, Math.floor(Math.log10(largest)) - Math.floor(Math.log10(step)))))));
  const decimals = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
  return ticks.map((t) => t.toFixed(decimals));
}

function formatX(kind: XKind, value: number): string {
  if (kind === "relative") return formatDuration(value);
  if (kind === "wall") return new Date(value * 1000).toLocaleString();
  return formatNumber(value);
}

function nearest(xs: number[], target: number): number {
  let lo = 0;
  let hi = xs.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < target) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && Math.abs(xs[lo - 1] - target) <= Math.abs(xs[lo] - target)) return lo - 1;
  return lo;
}

/** Step-axis ticks: whole steps only (never "0.5"). */
const STEP_INCRS = [1, 2, 5].flatMap((m) => Array.from({ length: 13 }, (_, e) => m * 10 ** e)).sort((a, b) => a - b);

/** Indices of points with no drawn neighbour: a value whose previous and next values (skipping the
 * join's `undefined`, which lines span) are gaps or absent. A line through them draws nothing. */
export function isolatedPoints(ys: readonly (number | null | undefined)[]): number[] {
  const out: number[] = [];
  let previous: number | null | undefined;
  for (let i = 0; i < ys.length; i += 1) {
    const v = ys[i];
    if (v === undefined) continue;
    if (v !== null && (previous === undefined || previous === null)) {
      let j = i + 1;
      while (j < ys.length && ys[j] === undefined) j += 1;
      if (j >= ys.length || ys[j] === null) out.push(i);
    }
    previous = v;
  }
  return out;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export function Chart({
  title,
  lines,
  xKind,
  xLabel,
  smoothing,
  logScale,
  syncKey,
  height = 220,
  resolution,
  onZoom,
  legend = true,
  live = false,
}: {
  title: string;
  lines: ChartLine[];
  xKind: XKind;
  xLabel: string;
  smoothing: number;
  logScale: boolean;
  syncKey: string;
  height?: number;
  /** Columns across the chart when many runs share it (about its width in pixels). */
  resolution?: number;
  /** Called with the visible x-range after a drag-zoom, and with null after a reset. */
  onZoom?: (range: [number, number] | null) => void;
  /** Whether the legend shows at first (its button toggles it). */
  legend?: boolean;
  /** A charted run is running: its new points are appended as they are logged. */
  live?: boolean;
}) {
  const host = useRef<HTMLDivElement>(null);
  const tip = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const zoomedRef = useRef(false);
  const [zoomed, setZoomed] = useState(false);
  const [legendShown, setLegendShown] = useState(legend);
  const [legendAll, setLegendAll] = useState(false);
  const [hiddenLines, setHiddenLines] = useState<ReadonlySet<string>>(new Set());
  const seriesOf = useRef(new Map<string, number[]>());
  const theme = useTheme();
  useEffect(() => setLegendShown(legend), [legend]);

  const prepared = useMemo<Prepared[]>(() => {
    return lines.map((line) => {
      const x: number[] = [];
      const raw: (number | null)[] = [];
      const lo: (number | null)[] = [];
      const hi: (number | null)[] = [];
      const positive = (v: number | null | undefined): number | null => (v === undefined || v === null || (logScale && v <= 0) ? null : v);
      for (let i = 0; i < line.x.length; i += 1) {
        const xv = line.x[i];
        if (xv === null) continue;
        x.push(xv);
        raw.push(positive(line.y[i]));
        if (line.band) {
          lo.push(positive(line.band.lo[i]));
          hi.push(positive(line.band.hi[i]));
        }
      }
      const band = line.band ? { lo, hi } : null;
      return { id: line.id, label: line.label, color: line.color, x, raw, shown: smoothing > 0 ? ema(raw, smoothing) : raw, band };
    });
  }, [lines, smoothing, logScale]);

  const data = useMemo<uPlot.AlignedData>(() => {
    const tables: uPlot.AlignedData[] = prepared.map((p) => [
      p.x,
      p.raw,
      ...(smoothing > 0 ? [p.shown] : []),
      ...(p.band ? [p.band.hi, p.band.lo] : []),
    ]) as uPlot.AlignedData[];
    if (tables.length === 0) return [[]];
    if (tables.length === 1) return tables[0];
    return alignTables(tables, resolution);
  }, [prepared, smoothing, resolution]);

  const hiddenRef = useRef(hiddenLines);
  hiddenRef.current = hiddenLines;
  const preparedRef = useRef(prepared);
  preparedRef.current = prepared;
  const onZoomRef = useRef(onZoom);
  onZoomRef.current = onZoom;

  const structure = `${prepared.map((p) => `${p.id}:${p.color}:${p.band ? "band" : ""}`).join("|")}#${smoothing > 0}#${xKind}#${logScale}#${theme}#${height}`;
  const hasPoints = prepared.some((p) => p.x.length > 0);

  useEffect(() => {
    const element = host.current;
    if (!element || !hasPoints) return undefined;
    const axisColor = cssVar("--muted");
    const gridColor = cssVar("--grid");
    const series: uPlot.Series[] = [{ label: xLabel }];
    // Many overlapping runs read better as hairlines, and thin lines are far cheaper to raster.
    const lineWidth = prepared.length > 20 ? 1 : 1.6;
    const bands: uPlot.Band[] = [];
    const indices = new Map<string, number[]>();
    // The main line's markers: every point of a sparse line (a few points across the width), else
    // only points no line reaches (a single step, or a value between gaps).
    const markers = (line: number): uPlot.Series.Points => ({
      show: (u) => {
        const p = preparedRef.current[line];
        return p !== undefined && p.x.length > 0 && p.x.length * 12 <= u.bbox.width / (window.devicePixelRatio || 1);
      },
      filter: (u, seriesIdx, show) => {
        if (show) return null;
        const found = isolatedPoints(u.data[seriesIdx] as (number | null | undefined)[]);
        return found.length ? found : null;
      },
      size: 8,
      fill: prepared[line]?.color,
    });
    prepared.forEach((p, line) => {
      const own: number[] = [];
      if (smoothing > 0) {
        own.push(series.length);
        series.push({ label: `${p.label} (raw)`, stroke: withAlpha(p.color, 0.22), width: 1, points: { show: false } });
      }
      own.push(series.length);
      series.push({ label: p.label, stroke: p.color, width: lineWidth, points: markers(line), ...(lines[line]?.dash ? { dash: lines[line].dash } : {}) });
      if (p.band) {
        const hiIndex = series.length;
        own.push(hiIndex, hiIndex + 1);
        series.push({ label: `${p.label} (max)`, stroke: withAlpha(p.color, 0.3), width: 0.5, points: { show: false } });
        series.push({ label: `${p.label} (min)`, stroke: withAlpha(p.color, 0.3), width: 0.5, points: { show: false } });
        bands.push({ series: [hiIndex, hiIndex + 1], fill: withAlpha(p.color, 0.16) });
      }
      indices.set(p.id, own);
    });
    seriesOf.current = indices;
    const tooltip = tip.current;
    const options: uPlot.Options = {
      width: Math.max(200, element.clientWidth),
      height,
      series,
      bands,
      legend: { show: false },
      cursor: {
        drag: { x: true, y: false, setScale: true },
        sync: { key: syncKey },
        points: { size: 6 },
      },
      scales: {
        x: {
          time: xKind === "wall",
          // One x value (a metric logged once): a range around it, so the point sits mid-chart.
          // (uPlot would pad one value to [v, v + 100] and put it on the left edge.)
          range: (u, min, max) => {
            const xs = u.data[0];
            const only = xs.length > 0 && xs[0] === xs[xs.length - 1] ? (xs[0] as number) : null;
            if (only === null) return [min, max];
            const pad = xKind === "wall" ? 60 : xKind === "step" ? 1 : Math.max(1, Math.abs(only) * 0.1);
            return [only - pad, only + pad];
          },
        },
        y: logScale ? { distr: 3 } : {},
      },
      axes: [
        {
          stroke: axisColor,
          grid: { stroke: gridColor, width: 1 },
          ticks: { stroke: gridColor, width: 1 },
          values:
            xKind === "wall"
              ? undefined
              : (_u, ticks) => (xKind === "relative" ? ticks.map((t) => (t === null ? "" : formatDuration(t))) : formatTicks(ticks)),
          size: 32,
          ...(xKind === "step" ? { incrs: STEP_INCRS } : {}),
        },
        {
          stroke: axisColor,
          grid: { stroke: gridColor, width: 1 },
          ticks: { stroke: gridColor, width: 1 },
          values: (_u, ticks) => (logScale ? ticks.map((t) => (t === null ? "" : compact(t))) : formatTicks(ticks)),
          // Wide enough for the longest label (7 px per character at 12 px, plus the ticks).
          size: (_u, values) => Math.max(36, Math.max(0, ...(values ?? []).map((v) => String(v ?? "").length)) * 7 + 18),
        },
      ],
      hooks: {
        setScale: [
          (u, key) => {
            if (key !== "x") return;
            const xs = u.data[0];
            if (!xs.length) return;
            const lo = u.scales.x.min ?? xs[0];
            const hi = u.scales.x.max ?? xs[xs.length - 1];
            const isZoomed = lo > (xs[0] as number) + 1e-9 || hi < (xs[xs.length - 1] as number) - 1e-9;
            if (isZoomed !== zoomedRef.current) {
              zoomedRef.current = isZoomed;
              setZoomed(isZoomed);
              if (!isZoomed) onZoomRef.current?.(null);
            }
            if (isZoomed) onZoomRef.current?.([lo, hi]);
          },
        ],
        setCursor: [
          (u) => {
            if (!tooltip) return;
            const left = u.cursor.left ?? -1;
            const top = u.cursor.top ?? -1;
            if (left < 0 || top < 0) {
              tooltip.hidden = true;
              return;
            }
            let xValue = u.posToVal(left, "x");
            const span = (u.scales.x.max ?? 0) - (u.scales.x.min ?? 0);
            const slack = Math.abs(span) * 0.02;
            if (xKind === "step") {
              // Steps are whole: show the logged step nearest the cursor, not the pixel's position.
              let best: number | null = null;
              for (const p of preparedRef.current) {
                const index = nearest(p.x, xValue);
                if (index >= 0 && (best === null || Math.abs(p.x[index] - xValue) < Math.abs(best - xValue))) best = p.x[index];
              }
              if (best !== null) xValue = Math.round(best);
            }
            const rows: { label: string; color: string; value: number; range: string }[] = [];
            for (const p of preparedRef.current) {
              if (!p.x.length || xValue < p.x[0] - slack || xValue > p.x[p.x.length - 1] + slack) continue;
              const index = nearest(p.x, xValue);
              if (index < 0) continue;
              const value = p.shown[index];
              if (value === null || value === undefined) continue;
              const lo = p.band?.lo[index];
              const hi = p.band?.hi[index];
              const range = lo !== undefined && lo !== null && hi !== undefined && hi !== null ? ` (${formatNumber(lo)} – ${formatNumber(hi)})` : "";
              rows.push({ label: p.label, color: p.color, value, range });
            }
            if (!rows.length) {
              tooltip.hidden = true;
              return;
            }
            rows.sort((a, b) => b.value - a.value);
            const more = rows.length > 12 ? rows.length - 12 : 0;
            tooltip.replaceChildren();
            const head = document.createElement("div");
            head.className = "tip-head";
            head.textContent = `${xLabel} ${formatX(xKind, xValue)}`;
            tooltip.appendChild(head);
            for (const row of rows.slice(0, 12)) {
              const line = document.createElement("div");
              line.className = "tip-row";
              const swatch = document.createElement("span");
              swatch.className = "swatch";
              swatch.style.background = row.color;
              const name = document.createElement("span");
              name.className = "tip-name";
              name.textContent = row.label;
              const value = document.createElement("span");
              value.className = "tip-value";
              value.textContent = formatNumber(row.value) + row.range;
              line.append(swatch, name, value);
              tooltip.appendChild(line);
            }
            if (more) {
              const rest = document.createElement("div");
              rest.className = "tip-more";
              rest.textContent = `and ${more} more`;
              tooltip.appendChild(rest);
            }
            tooltip.hidden = false;
            const plotLeft = u.over.offsetLeft;
            const width = tooltip.offsetWidth;
            const room = element.clientWidth - (plotLeft + left) - 16;
            tooltip.style.left = `${room > width ? plotLeft + left + 14 : Math.max(0, plotLeft + left - width - 14)}px`;
            tooltip.style.top = `${Math.max(0, u.over.offsetTop + top - 10)}px`;
          },
        ],
      },
    };
    const chart = new uPlot(options, data, element);
    plot.current = chart;
    for (const id of hiddenRef.current) for (const index of indices.get(id) ?? []) chart.setSeries(index, { show: false });
    zoomedRef.current = false;
    setZoomed(false);
    const resize = new ResizeObserver(() => {
      const width = Math.max(200, element.clientWidth);
      if (Math.abs(width - chart.width) > 1) chart.setSize({ width, height });
    });
    resize.observe(element);
    const hide = () => {
      if (tooltip) tooltip.hidden = true;
    };
    chart.over.addEventListener("mouseleave", hide);
    return () => {
      resize.disconnect();
      chart.destroy();
      plot.current = null;
    };
    // Recreate only when the chart's structure changes; data updates go through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [structure, hasPoints]);

  useEffect(() => {
    const chart = plot.current;
    if (!chart) return;
    if (chart.data !== data) chart.setData(data, !zoomedRef.current);
  }, [data]);

  const toggleLine = (id: string) => {
    const next = new Set(hiddenLines);
    const show = next.has(id);
    if (show) next.delete(id);
    else next.add(id);
    setHiddenLines(next);
    const chart = plot.current;
    if (chart) for (const index of seriesOf.current.get(id) ?? []) chart.setSeries(index, { show });
  };

  const pointCount = prepared.reduce((n, p) => n + p.x.length, 0);
  const LEGEND_ROWS = 12;
  const legendLines = legendAll ? prepared : prepared.slice(0, LEGEND_ROWS);

  const reset = () => {
    const chart = plot.current;
    if (!chart) return;
    const xs = chart.data[0];
    if (xs.length) chart.setScale("x", { min: xs[0] as number, max: xs[xs.length - 1] as number });
  };

  return (
    <figure class="chart" aria-label={`Chart of ${title}`} data-bands={prepared.filter((p) => p.band).length} data-points={pointCount}>
      <figcaption class="chart-title">
        <span title={title}>{title}</span>
        <span class="chart-actions">
          {live && (
            <span class="live-dot" title="Live: new points are appended as the run logs them" aria-label="Live">
              <span aria-hidden="true" />
            </span>
          )}
          {zoomed && (
            <button type="button" class="btn btn-xs" onClick={reset}>
              Reset zoom
            </button>
          )}
          {hasPoints && (
            <button
              type="button"
              class="btn btn-xs"
              aria-pressed={legendShown}
              aria-label={`${legendShown ? "Hide" : "Show"} the legend of ${title}`}
              title={legendShown ? "Hide legend" : "Show legend"}
              onClick={() => setLegendShown(!legendShown)}
            >
              Legend
            </button>
          )}
        </span>
      </figcaption>
      {hasPoints ? (
        <div class="chart-body" style={{ height: `${height}px` }}>
          <div ref={host} class="chart-plot" />
          <div ref={tip} class="chart-tip" hidden role="status" aria-live="off" />
        </div>
      ) : (
        <div class="chart-empty" style={{ height: `${height}px` }}>
          No points to draw{logScale ? " (log scale hides values ≤ 0)" : ""}.
        </div>
      )}
      {hasPoints && legendShown && (
        <ul class="chart-legend" aria-label={`Legend of ${title}`}>
          {legendLines.map((p) => (
            <li key={p.id}>
              <button
                type="button"
                class={hiddenLines.has(p.id) ? "legend-item is-off" : "legend-item"}
                data-line={p.id}
                aria-pressed={!hiddenLines.has(p.id)}
                title={`${hiddenLines.has(p.id) ? "Show" : "Hide"} ${p.label}`}
                onClick={() => toggleLine(p.id)}
              >
                <span class="swatch" style={{ background: p.color }} data-color={p.color} aria-hidden="true" />
                <span class="legend-name">{p.label}</span>
              </button>
            </li>
          ))}
          {prepared.length > LEGEND_ROWS && (
            <li>
              <button type="button" class="legend-more" onClick={() => setLegendAll(!legendAll)}>
                {legendAll ? "fewer" : `and ${prepared.length - LEGEND_ROWS} more`}
              </button>
            </li>
          )}
        </ul>
      )}
    </figure>
  );
}
