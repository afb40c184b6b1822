// Histograms over steps: each run's distribution as a heat map (x: step, y: value), and one step's
// histogram, chosen with the slider or by hovering the heat map.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { formatNumber } from "../../lib/format";
import { type HeatMap, heatMap, type HistogramValue, isHistogram, type MediaRunValues, stepsUnion, valueAt } from "../../lib/media";
import type { MediaRun } from "./MediaPanel";
import { StepSlider } from "./StepSlider";

// A perceptual ramp (dark blue to yellow) for the share of a step's counts.
const RAMP: [number, number, number][] = [
  [68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37],
];

function rampColor(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - i;
  const a = RAMP[i] as [number, number, number];
  const b = RAMP[i + 1] as [number, number, number];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

function HeatCanvas({ map, selected, onHover, label }: { map: HeatMap; selected: number; onHover: (step: number) => void; label: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const columns = map.cells.length;
  useEffect(() => {
    const target = canvas.current;
    if (!target || !columns) return;
    const width = Math.max(columns, Math.min(1200, target.clientWidth || 360));
    const height = 140;
    target.width = width;
    target.height = height;
    const context = target.getContext("2d");
    if (!context) return;
    const image = context.createImageData(width, height);
    for (let px = 0; px < width; px += 1) {
      const column = map.cells[Math.min(columns - 1, Math.floor((px / width) * columns))] ?? [];
      for (let py = 0; py < height; py += 1) {
        const row = map.rows - 1 - Math.min(map.rows - 1, Math.floor((py / height) * map.rows)); // high values on top
        const share = column[row] ?? 0;
        const [r, g, b] = share > 0 ? rampColor(Math.sqrt(share)) : [0, 0, 0];
        const at = (py * width + px) * 4;
        image.data[at] = r;
        image.data[at + 1] = g;
        image.data[at + 2] = b;
        image.data[at + 3] = share > 0 ? 255 : 22;
      }
    }
    context.putImageData(image, 0, 0);
    const index = map.steps.findIndex((s) => s >= selected);
    if (index >= 0) {
      context.fillStyle = "rgba(255,255,255,0.85)";
      context.fillRect(Math.floor(((index + 0.5) / columns) * width), 0, 1, height);
    }
    target.dataset.drawn = String(columns);
  }, [map, selected, columns]);
  return (
    <div class="media-heat">
      <div class="media-heat-axis">
        <span>{formatNumber(map.hi)}</span>
        <span>{formatNumber(map.lo)}</span>
      </div>
      <div class="media-heat-body">
        <canvas
          ref={canvas}
          class="media-heatmap"
          role="img"
          aria-label={`${label}: distribution over ${columns} steps, values ${formatNumber(map.lo)} to ${formatNumber(map.hi)}`}
          onMouseMove={(event) => {
            const rect = (event.currentTarget as HTMLCanvasElement).getBoundingClientRect();
            const index = Math.floor(((event.clientX - rect.left) / Math.max(1, rect.width)) * columns);
            const step = map.steps[Math.min(columns - 1, Math.max(0, index))];
            if (step !== undefined) onHover(step);
          }}
        />
        <div class="media-heat-steps">
          <span>step {formatNumber(map.steps[0] ?? 0)}</span>
          <span>{formatNumber(map.steps[map.steps.length - 1] ?? 0)}</span>
        </div>
      </div>
    </div>
  );
}

/** One step's histogram as bars (SVG), bin edges under it. */
export function HistogramBars({ value, color, label }: { value: HistogramValue; color: string; label: string }) {
  const top = Math.max(1, ...value.values);
  const n = value.values.length;
  const lo = value.bins[0] ?? 0;
  const hi = value.bins[n] ?? 1;
  return (
    <div class="media-bars">
      <svg viewBox={`0 0 ${n} 100`} preserveAspectRatio="none" role="img" aria-label={label} class="media-hist">
        {value.values.map((count, i) => (
          <rect key={i} x={i + 0.06} width={0.88} y={100 - (count / top) * 100} height={(count / top) * 100} fill={color}>
            <title>{`${formatNumber(value.bins[i] ?? 0)} – ${formatNumber(value.bins[i + 1] ?? 0)}: ${count}`}</title>
          </rect>
        ))}
      </svg>
      <div class="media-heat-steps">
        <span>{formatNumber(lo)}</span>
        <span>{formatNumber(hi)}</span>
      </div>
    </div>
  );
}

export function HistogramPanel({ metricKey, runs, values }: { metricKey: string; runs: MediaRun[]; values: Map<string, MediaRunValues> }) {
  const steps = useMemo(() => stepsUnion([...values.values()]), [values]);
  const [step, setStep] = useState<number | null>(null);
  const shown = step ?? steps[steps.length - 1] ?? 0;
  const maps = useMemo(() => {
    const out = new Map<string, { map: HeatMap; series: { step: number; value: HistogramValue }[] }>();
    for (const [inc, run] of values) {
      const series = run.steps.filter((s) => isHistogram(s.value)).map((s) => ({ step: s.step, value: s.value as unknown as HistogramValue }));
      if (series.length) out.set(inc, { map: heatMap(series), series });
    }
    return out;
  }, [values]);
  return (
    <>
      <div class="media-toolbar">
        <StepSlider steps={steps} value={shown} onChange={setStep} label={metricKey} />
      </div>
      <div class="media-runs media-runs-wide">
        {runs.map((run) => {
          const found = maps.get(run.incarnation_id);
          if (!found) return null;
          const one = valueAt(found.series, shown);
          return (
            <figure class="media-run" key={run.incarnation_id} data-run={run.name}>
              <figcaption class="media-run-name">
                <span class="swatch" style={{ background: run.color }} aria-hidden="true" />
                <span>{run.name}</span>
              </figcaption>
              {found.series.length > 1 && <HeatCanvas map={found.map} selected={shown} onHover={setStep} label={`${metricKey} · ${run.name}`} />}
              {one && <HistogramBars value={one.value} color={run.color} label={`${metricKey} · ${run.name} at step ${one.step}`} />}
            </figure>
          );
        })}
      </div>
    </>
  );
}
