// Side-by-side comparison of runs: their config or summary flattened to "a.b.c" keys, one row per
// key and one value per run, with the rows whose values differ marked.
import { flatten } from "./flatten";

export interface CompareRow {
  key: string;
  /** One value per run, in the runs' order; `undefined` where a run lacks the key. */
  values: unknown[];
  /** Whether the runs disagree (a key one run lacks counts as a difference). */
  differs: boolean;
}

/** A stable text for a value: object keys sorted, so {a, b} and {b, a} compare equal. */
export function canonical(value: unknown): string {
  if (value === undefined) return "\u0000undefined";
  if (typeof value === "number" && Number.isNaN(value)) return "NaN";
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? String(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
}

/** Whether the values are not all the same. */
export function valuesDiffer(values: unknown[]): boolean {
  if (values.length < 2) return false;
  const first = canonical(values[0]);
  return values.some((v) => canonical(v) !== first);
}

/** Rows for the union of the documents' flattened keys, sorted by key (or in first-seen order). */
export function compareDocs(docs: Record<string, unknown>[], sorted = true): CompareRow[] {
  const flat = docs.map((doc) => new Map(flatten(doc ?? {})));
  const keys = new Set<string>();
  for (const map of flat) for (const key of map.keys()) keys.add(key);
  return (sorted ? [...keys].sort((a, b) => a.localeCompare(b)) : [...keys]).map((key) => {
      const values = flat.map((map) => map.get(key));
      return { key, values, differs: valuesDiffer(values) };
    });
}

/** The run ids a compare URL names (`runs=a,b,c`), without blanks or repeats, in order. */
export function parseRunIds(param: string | null | undefined): string[] {
  const seen = new Set<string>();
  for (const part of (param ?? "").split(",")) {
    const id = part.trim();
    if (id) seen.add(id);
  }
  return [...seen];
}

/** The compare page of these runs: `/<entity>/<project>/compare?runs=a,b`. */
export function comparePath(entity: string, project: string, runIds: string[], onlyDiff = false): string {
  const runs = runIds.map(encodeURIComponent).join(",");
  return `/${encodeURIComponent(entity)}/${encodeURIComponent(project)}/compare?runs=${runs}${onlyDiff ? "&diff=1" : ""}`;
}
