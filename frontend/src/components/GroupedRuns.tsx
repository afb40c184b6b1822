// The runs table grouped by a column: one row per value with its run count; numeric columns are
// summarised per group as a small histogram, other columns by their distinct values.
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, errorText, type RunItem, type RunQuery } from "../api";
import { formatNumber, formatValue } from "../lib/format";
import { setQuery } from "../router";

export interface GroupColumn {
  id: string;
  label: string;
  group?: "config" | "summary";
  value?: (run: RunItem) => unknown;
  /** How a numeric range is written (a duration as "1m 20s"); numbers by default. */
  format?: (value: number) => string;
  filterField?: string;
}

/** At most this many runs are read for grouping (server pages of 1000). */
export const GROUP_CAP = 10_000;
const BINS = 10;

export function groupKey(value: unknown): string {
  return value === undefined || value === null || value === "" ? "(none)" : formatValue(value);
}

/** Counts per bin of finite numbers between their min and max (all in one bin when they are equal). */
export function histogram(values: number[], bins = BINS): { counts: number[]; min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const counts = new Array<number>(bins).fill(0);
  const span = max - min;
  for (const v of values) {
    const index = span > 0 ? Math.min(bins - 1, Math.floor(((v - min) / span) * bins)) : 0;
    counts[index] += 1;
  }
  return { counts, min, max };
}

function Histogram({ label, values, format = formatNumber }: { label: string; values: number[]; format?: (value: number) => string }) {
  const { counts, min, max } = histogram(values);
  const top = Math.max(1, ...counts);
  const width = 110;
  const height = 26;
  const bar = width / counts.length;
  const summary = `${label}: ${values.length} value${values.length === 1 ? "" : "s"} from ${format(min)} to ${format(max)}`;
  return (
    <figure class="mini-hist" data-count={values.length} data-min={min} data-max={max}>
      <svg width={width} height={height} role="img" aria-label={`Histogram of ${summary}`}>
        <title>{summary}</title>
        {counts.map((count, index) => {
          const h = count ? Math.max(2, (count / top) * (height - 2)) : 0;
          return <rect key={index} x={index * bar + 0.5} y={height - h} width={Math.max(1, bar - 1)} height={h} rx={1} />;
        })}
      </svg>
      <figcaption>
        {min === max ? format(min) : `${format(min)} – ${format(max)}`}
      </figcaption>
    </figure>
  );
}

function Summary({ column, runs }: { column: GroupColumn; runs: RunItem[] }): JSX.Element {
  const raw = runs.map((run) => column.value?.(run));
  const present = raw.filter((v) => v !== undefined && v !== null && v !== "");
  if (!present.length) return <span class="muted">–</span>;
  if (present.every((v) => typeof v === "number")) {
    const numbers = (present as number[]).filter((v) => Number.isFinite(v));
    if (numbers.length) return <Histogram label={column.group ? `${column.group}.${column.label}` : column.label} values={numbers} format={column.format} />;
  }
  const distinct = [...new Set(present.map(formatValue))];
  return <span title={distinct.join(", ")}>{distinct.length === 1 ? distinct[0] : `${distinct.length} distinct`}</span>;
}

export function GroupedRuns({
  entity,
  project,
  runQuery,
  by,
  columns,
}: {
  entity: string;
  project: string;
  runQuery: RunQuery;
  by: GroupColumn;
  columns: GroupColumn[];
}) {
  const [runs, setRuns] = useState<RunItem[] | null>(null);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const queryKey = JSON.stringify(runQuery);

  useEffect(() => {
    const controller = new AbortController();
    setRuns(null);
    (async () => {
      const first = await api.runs(entity, project, { ...runQuery, limit: 1000, offset: 0 }, controller.signal);
      const all = [...first.runs];
      const wanted = Math.min(first.total, GROUP_CAP);
      const pages = [];
      for (let offset = 1000; offset < wanted; offset += 1000) pages.push(api.runs(entity, project, { ...runQuery, limit: 1000, offset }, controller.signal));
      for (const page of await Promise.all(pages)) all.push(...page.runs);
      setTotal(first.total);
      setRuns(all);
      setError(null);
    })().catch((err: unknown) => {
      if (!controller.signal.aborted) setError(errorText(err));
    });
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [entity, project, queryKey]);

  if (error) return <p class="error-text" role="alert">{error}</p>;
  if (!runs) return <p class="muted" aria-busy="true">Grouping runs…</p>;

  const groups = new Map<string, { value: unknown; runs: RunItem[] }>();
  for (const run of runs) {
    const value = by.value?.(run);
    const key = groupKey(value);
    const entry = groups.get(key) ?? { value, runs: [] };
    entry.runs.push(run);
    groups.set(key, entry);
  }
  const rows = [...groups.entries()].sort((a, b) => b[1].runs.length - a[1].runs.length || a[0].localeCompare(b[0]));
  const shown = columns.filter((c) => c.id !== by.id && c.id !== "created" && c.value);
  const byLabel = by.group ? `${by.group}.${by.label}` : by.label;

  const showGroup = (key: string, value: unknown) => {
    if (!by.filterField) return;
    const clause = { [by.filterField]: { $eq: key === "(none)" ? null : value } };
    let filter: Record<string, unknown> = clause;
    if (runQuery.filters) {
      try {
        filter = { $and: [JSON.parse(runQuery.filters) as unknown, clause] };
      } catch {
        /* the current filter is invalid: replace it */
      }
    }
    setQuery({ tgroup: null, f: JSON.stringify(filter) }, false);
  };

  return (
    <div class="grouped-runs">
      <p class="muted" data-testid="group-summary">
        {groups.size} group{groups.size === 1 ? "" : "s"} by {byLabel} over {runs.length} run{runs.length === 1 ? "" : "s"}
        {total > runs.length ? ` (the first ${runs.length} of ${total})` : ""}
      </p>
      <div class="grouped-scroll">
        <table class="data-table grouped-table" aria-label={`Runs grouped by ${byLabel}`}>
          <thead>
            <tr>
              <th scope="col">{byLabel}</th>
              <th scope="col">Runs</th>
              {shown.map((c) => (
                <th scope="col" key={c.id}>
                  {c.group && <span class="head-prefix">{c.group === "config" ? "cfg" : "sum"}</span>}
                  {c.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map(([key, entry]) => (
              <tr key={key} data-group={key}>
                <th scope="row">
                  {by.filterField ? (
                    <button type="button" class="link-button" title="Show these runs" aria-label={`Show the runs where ${byLabel} is ${key}`} onClick={() => showGroup(key, entry.value)}>
                      {key}
                    </button>
                  ) : (
                    key
                  )}
                </th>
                <td class="num">{entry.runs.length}</td>
                {shown.map((c) => (
                  <td key={c.id} data-column={c.id}>
                    <Summary column={c} runs={entry.runs} />
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
