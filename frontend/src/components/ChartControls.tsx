// Workspace-wide chart settings, all kept in the URL: x-axis, smoothing, log scale, panel search.
import { setQuery } from "../router";
import { HIDDEN_KEYS } from "./PanelGrid";

export function ChartControls({
  x,
  smoothing,
  logScale,
  panelSearch,
  metricKeys,
}: {
  x: string;
  smoothing: number;
  logScale: boolean;
  panelSearch: string;
  metricKeys: string[];
}) {
  const metrics = metricKeys.filter((k) => !HIDDEN_KEYS.has(k));
  return (
    <div class="chart-controls" role="group" aria-label="Chart settings">
      <label class="control">
        <span>Search panels</span>
        <input
          type="search"
          class="input input-sm"
          placeholder="e.g. loss"
          value={panelSearch}
          onInput={(event) => setQuery({ pq: (event.target as HTMLInputElement).value })}
        />
      </label>
      <label class="control">
        <span>X-axis</span>
        <select class="input input-sm" value={x} onChange={(event) => setQuery({ x: (event.target as HTMLSelectElement).value === "_step" ? null : (event.target as HTMLSelectElement).value }, false)}>
          <option value="_step">Step</option>
          <option value="_runtime">Relative time</option>
          <option value="_timestamp">Wall time</option>
          {metrics.length > 0 && (
            <optgroup label="Metric">
              {metrics.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </optgroup>
          )}
        </select>
      </label>
      <label class="control control-slider">
        <span>
          Smoothing <output>{smoothing.toFixed(2)}</output>
        </span>
        <input
          type="range"
          min="0"
          max="0.99"
          step="0.01"
          value={smoothing}
          onInput={(event) => {
            const value = Number((event.target as HTMLInputElement).value);
            setQuery({ smooth: value > 0 ? value.toFixed(2) : null });
          }}
        />
      </label>
      <label class="control control-check">
        <input type="checkbox" checked={logScale} onChange={(event) => setQuery({ log: (event.target as HTMLInputElement).checked ? "1" : null }, false)} />
        <span>Log scale</span>
      </label>
    </div>
  );
}

export function readChartSettings(query: URLSearchParams, defaultX = "_step"): { x: string; smoothing: number; logScale: boolean; panelSearch: string } {
  const smooth = Number(query.get("smooth") ?? "0");
  return {
    x: query.get("x") || defaultX,
    smoothing: Number.isFinite(smooth) ? Math.min(0.99, Math.max(0, smooth)) : 0,
    logScale: query.get("log") === "1",
    panelSearch: query.get("pq") ?? "",
  };
}

/** Sections closed in the URL (`closed=a,b`); `defaults` apply when the parameter is absent. */
export function readClosed(query: URLSearchParams, defaults: string[]): Set<string> {
  const value = query.get("closed");
  if (value === null) return new Set(defaults);
  return new Set(value.split(",").filter((s) => s && s !== "-"));
}

export function toggleClosed(closed: Set<string>, section: string): void {
  const next = new Set(closed);
  if (next.has(section)) next.delete(section);
  else next.add(section);
  setQuery({ closed: next.size ? [...next].join(",") : "-" });
}
