// Chart panels for the `plot.*` presets: a logged table plus which columns the chart draws.
import { useMemo } from "preact/hooks";
import { formatNumber } from "../../lib/format";
import { barsOf, type ChartSpec, chartOf, type Confusion, confusionOf, curvesOf, type MediaRunValues, valueAt } from "../../lib/media";
import { type ColoredCurve, CurveChart } from "./CurveChart";
import type { MediaRun } from "./MediaPanel";
import type { TableBody } from "./mediaData";
import { StepSlider } from "./StepSlider";
import { useRunAndStep, WithTable } from "./TablePanel";
import { PALETTE } from "../../lib/colors";

function ConfusionGrid({ matrix, label }: { matrix: Confusion; label: string }) {
  return (
    <div class="media-confusion-wrap">
      <table class="media-confusion" aria-label={label}>
        <thead>
          <tr>
            <th class="corner">Actual \ Predicted</th>
            {matrix.predicted.map((p) => (
              <th key={p} scope="col">{p}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.actual.map((a, r) => (
            <tr key={a}>
              <th scope="row">{a}</th>
              {matrix.predicted.map((p, c) => {
                const n = matrix.counts[r]?.[c] ?? 0;
                const share = matrix.max ? n / matrix.max : 0;
                return (
                  <td
                    key={p}
                    class={share > 0.55 ? "strong" : ""}
                    style={{ background: `rgba(31, 98, 216, ${0.06 + share * 0.88})` }}
                    title={`actual ${a}, predicted ${p}: ${n}`}
                    data-count={n}
                  >
                    {n}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Bars({ bars, color, label }: { bars: { label: string; value: number }[]; color: string; label: string }) {
  const top = Math.max(1e-12, ...bars.map((b) => Math.abs(b.value)));
  return (
    <div class="media-barlist" role="img" aria-label={label}>
      {bars.slice(0, 60).map((bar, i) => (
        <div class="media-barrow" key={i}>
          <span class="media-barlabel" title={bar.label}>{bar.label}</span>
          <span class="media-bartrack">
            <span class="media-barfill" style={{ width: `${(Math.abs(bar.value) / top) * 100}%`, background: color }} />
          </span>
          <span class="num">{formatNumber(bar.value)}</span>
        </div>
      ))}
    </div>
  );
}

const AXES: Record<string, [string, string, boolean]> = {
  roc_curve: ["False positive rate", "True positive rate", true],
  pr_curve: ["Recall", "Precision", true],
};

function PresetView({ spec, table, run, multi, label }: { spec: ChartSpec; table: TableBody; run: MediaRun; multi: boolean; label: string }) {
  const curves = useMemo<ColoredCurve[]>(() => {
    const found = curvesOf(table.columns, table.data, spec);
    return found.map((curve, i) => ({ ...curve, color: found.length === 1 ? run.color : (PALETTE[i % PALETTE.length] ?? run.color), name: multi && found.length === 1 ? run.name : curve.name }));
  }, [table, spec, run, multi]);
  if (spec.preset === "confusion_matrix") return <ConfusionGrid matrix={confusionOf(table.columns, table.data, spec.fields)} label={label} />;
  if (spec.preset === "bar" || spec.preset === "histogram") return <Bars bars={barsOf(table.columns, table.data, spec)} color={run.color} label={label} />;
  const [x, y, unit] = AXES[spec.preset] ?? [spec.fields.x ?? spec.fields.step ?? "x", spec.fields.y ?? spec.fields.lineVal ?? "y", false];
  if (!curves.length) return <p class="media-none">The table has no {x} and {y} columns to draw.</p>;
  return <CurveChart curves={curves} xLabel={x} yLabel={y} unit={unit} scatter={spec.preset === "scatter"} label={label} />;
}

export function PlotPanel({ metricKey, runs, values }: { metricKey: string; runs: MediaRun[]; values: Map<string, MediaRunValues> }) {
  const { withValues, steps, shown, setStep } = useRunAndStep(runs, values);
  return (
    <>
      <div class="media-toolbar">
        <StepSlider steps={steps} value={shown} onChange={setStep} label={metricKey} />
      </div>
      <div class={`media-runs${withValues.length > 1 ? "" : " media-runs-wide"}`}>
        {withValues.map((run) => {
          const found = valueAt(values.get(run.incarnation_id)?.steps ?? [], shown);
          const spec = chartOf(found?.value);
          const label = `${spec?.title || metricKey} · ${run.name}`;
          return (
            <figure class="media-run" key={run.incarnation_id} data-run={run.name} data-preset={spec?.preset ?? ""}>
              {withValues.length > 1 && (
                <figcaption class="media-run-name">
                  <span class="swatch" style={{ background: run.color }} aria-hidden="true" />
                  <span>{run.name}</span>
                </figcaption>
              )}
              {spec?.title && <div class="media-chart-title">{spec.title}</div>}
              {found && spec ? (
                <WithTable value={found.value}>{(table) => <PresetView spec={spec} table={table} run={run} multi={withValues.length > 1} label={label} />}</WithTable>
              ) : (
                <p class="media-none">No chart at this step.</p>
              )}
            </figure>
          );
        })}
      </div>
    </>
  );
}
