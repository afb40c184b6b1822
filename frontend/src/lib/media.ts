// Pure logic of the media panels: descriptors, steps across runs, tables, histograms, chart presets.

/** A media history value as logged (`_type` plus the type's fields); files carry a server `url`. */
export interface Descriptor {
  _type?: string;
  path?: string;
  url?: string;
  sha256?: string;
  size?: number;
  caption?: string;
  width?: number;
  height?: number;
  format?: string;
  [field: string]: unknown;
}

export interface MediaStep {
  step: number;
  value: Descriptor;
}

export interface MediaRunValues {
  incarnation_id: string;
  count: number;
  steps: MediaStep[];
}

/** Where the web app reads a media file of an incarnation (the server follows fork lineage). */
export function mediaFileUrl(incarnation: string, path: string): string {
  return `/api/v1/media/files/${encodeURIComponent(incarnation)}/${path.split("/").map(encodeURIComponent).join("/")}`;
}

/** Every step any run logged a value at, ascending. */
export function stepsUnion(runs: { steps: { step: number }[] }[]): number[] {
  const all = new Set<number>();
  for (const run of runs) for (const s of run.steps) all.add(s.step);
  return [...all].sort((a, b) => a - b);
}

/** A run's value at `step`, or its latest before it (runs log media at different steps). */
export function valueAt<T extends { step: number }>(steps: T[], step: number): T | null {
  let lo = 0;
  let hi = steps.length - 1;
  let found: T | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const item = steps[mid] as T;
    if (item.step <= step) {
      found = item;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** The images of a value: one `image-file`, or the members of a list (`images/separated`). */
export function imagesOf(value: Descriptor | null | undefined): Descriptor[] {
  if (!value) return [];
  if (value._type === "image-file") return [value];
  if (value._type === "images/separated" && Array.isArray(value.images)) {
    // The list's boxes and masks sit beside the images (`all_boxes[i]`, `all_masks[i]`), as do their sizes.
    const boxes = Array.isArray(value.all_boxes) ? (value.all_boxes as unknown[]) : [];
    const masks = Array.isArray(value.all_masks) ? (value.all_masks as unknown[]) : [];
    return (value.images as Descriptor[]).map((image, i) => ({
      ...image,
      width: image.width ?? value.width,
      height: image.height ?? value.height,
      ...(image.boxes || !boxes[i] ? {} : { boxes: boxes[i] }),
      ...(image.masks || !masks[i] ? {} : { masks: masks[i] }),
    }));
  }
  return [];
}

export interface BoxRect {
  x: number;
  y: number;
  w: number;
  h: number;
  label: string;
  classId: number;
}

interface BoxData {
  position?: { minX?: number; maxX?: number; minY?: number; maxY?: number; middle?: number[]; width?: number; height?: number };
  domain?: string;
  class_id?: number;
  box_caption?: string;
  scores?: Record<string, number>;
}

/** A logged box as fractions of the image (0..1): `position` is either corners or a middle with a
 *  size, in pixels when `domain` is "pixel", else as fractions. */
export function boxRect(box: BoxData, width: number, height: number, labels: Record<string, string> = {}): BoxRect | null {
  const p = box.position;
  if (!p) return null;
  let x0: number;
  let x1: number;
  let y0: number;
  let y1: number;
  if (p.middle && p.width !== undefined && p.height !== undefined) {
    const [mx = 0, my = 0] = p.middle;
    x0 = mx - p.width / 2;
    x1 = mx + p.width / 2;
    y0 = my - p.height / 2;
    y1 = my + p.height / 2;
  } else if (p.minX !== undefined && p.maxX !== undefined && p.minY !== undefined && p.maxY !== undefined) {
    [x0, x1, y0, y1] = [p.minX, p.maxX, p.minY, p.maxY];
  } else return null;
  if (box.domain === "pixel") {
    const sx = width > 0 ? width : 1;
    const sy = height > 0 ? height : 1;
    [x0, x1, y0, y1] = [x0 / sx, x1 / sx, y0 / sy, y1 / sy];
  }
  const classId = box.class_id ?? 0;
  const label = box.box_caption ?? labels[String(classId)] ?? "";
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0, label, classId };
}

/** Every box of an image descriptor, per group (`{"predictions": {"box_data", "class_labels"}}`). */
export function boxesOf(value: Descriptor): { group: string; rect: BoxRect }[] {
  const groups = value.boxes;
  if (!groups || typeof groups !== "object") return [];
  const out: { group: string; rect: BoxRect }[] = [];
  for (const [group, raw] of Object.entries(groups as Record<string, unknown>)) {
    const entry = raw as { box_data?: BoxData[]; class_labels?: Record<string, string> };
    for (const box of entry.box_data ?? []) {
      const rect = boxRect(box, value.width ?? 0, value.height ?? 0, entry.class_labels ?? {});
      if (rect) out.push({ group, rect });
    }
  }
  return out;
}

/** A distinct color per class id (masks and boxes), as [r, g, b]. */
export function classColor(id: number): [number, number, number] {
  const palette: [number, number, number][] = [
    [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
    [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [170, 110, 40],
  ];
  return palette[((id % palette.length) + palette.length) % palette.length] as [number, number, number];
}

// -- tables -----------------------------------------------------------------------------------------

export type Cell = unknown;

export interface TableQuery {
  filter: string;
  sort: number | null;
  descending: boolean;
  page: number;
  pageSize: number;
}

/** A cell as text, for filtering and for plain display (media cells by their caption or type). */
export function cellText(cell: Cell): string {
  if (cell === null || cell === undefined) return "";
  if (typeof cell === "object") {
    const d = cell as Descriptor;
    if (typeof d._type === "string") return d.caption ? String(d.caption) : d._type;
    return JSON.stringify(cell);
  }
  return String(cell);
}

function compareCells(a: Cell, b: Cell): number {
  const na = typeof a === "number" ? a : typeof a === "boolean" ? Number(a) : NaN;
  const nb = typeof b === "number" ? b : typeof b === "boolean" ? Number(b) : NaN;
  if (!Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
  if (!Number.isNaN(na)) return -1; // numbers before text and empties
  if (!Number.isNaN(nb)) return 1;
  return cellText(a).localeCompare(cellText(b), undefined, { numeric: true });
}

/** The rows of one page after filtering (any cell contains the text, case-insensitive; or
 *  `column:text` for one column) and sorting; `total` counts the filtered rows. */
export function tableView(columns: string[], rows: Cell[][], query: TableQuery): { rows: Cell[][]; total: number; pages: number } {
  let kept = rows;
  const needle = query.filter.trim().toLowerCase();
  if (needle) {
    const colon = needle.indexOf(":");
    const column = colon > 0 ? columns.findIndex((c) => c.toLowerCase() === needle.slice(0, colon).trim()) : -1;
    const text = column >= 0 ? needle.slice(colon + 1).trim() : needle;
    kept = rows.filter((row) =>
      column >= 0 ? cellText(row[column]).toLowerCase().includes(text) : row.some((cell) => cellText(cell).toLowerCase().includes(text)),
    );
  }
  if (query.sort !== null && query.sort >= 0) {
    const at = query.sort;
    const sign = query.descending ? -1 : 1;
    kept = kept.map((row, i) => [row, i] as const).sort((a, b) => sign * compareCells(a[0][at], b[0][at]) || a[1] - b[1]).map(([row]) => row);
  }
  const pages = Math.max(1, Math.ceil(kept.length / query.pageSize));
  const page = Math.min(Math.max(0, query.page), pages - 1);
  return { rows: kept.slice(page * query.pageSize, (page + 1) * query.pageSize), total: kept.length, pages };
}

// -- histograms -------------------------------------------------------------------------------------

export interface HistogramValue {
  values: number[];
  bins: number[];
}

export function isHistogram(value: unknown): value is HistogramValue {
  const v = value as HistogramValue | null;
  return !!v && Array.isArray(v.values) && Array.isArray(v.bins) && v.bins.length === v.values.length + 1;
}

export interface HeatMap {
  steps: number[];
  lo: number;
  hi: number;
  rows: number;
  /** cells[column][row]: the share of that step's counts falling in the row's value range (0..1 of the step's max). */
  cells: number[][];
}

/** Histograms over steps on one value grid of `rows` rows: each step's counts spread over the rows
 *  its bins overlap (in proportion), then scaled to that step's largest row. */
export function heatMap(series: { step: number; value: HistogramValue }[], rows = 48): HeatMap {
  let lo = Infinity;
  let hi = -Infinity;
  for (const { value } of series) {
    lo = Math.min(lo, value.bins[0] ?? Infinity);
    hi = Math.max(hi, value.bins[value.bins.length - 1] ?? -Infinity);
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return { steps: [], lo: 0, hi: 1, rows, cells: [] };
  if (hi <= lo) {
    lo -= 0.5;
    hi += 0.5;
  }
  const size = (hi - lo) / rows;
  const cells = series.map(({ value }) => {
    const column = new Array<number>(rows).fill(0);
    value.values.forEach((count, i) => {
      const a = value.bins[i] ?? 0;
      const b = value.bins[i + 1] ?? a;
      if (!count) return;
      if (b <= a) {
        column[Math.min(rows - 1, Math.max(0, Math.floor((a - lo) / size)))] += count;
        return;
      }
      const first = Math.max(0, Math.floor((a - lo) / size));
      const last = Math.min(rows - 1, Math.floor((b - lo) / size));
      for (let r = first; r <= last; r += 1) {
        const overlap = Math.min(b, lo + (r + 1) * size) - Math.max(a, lo + r * size);
        if (overlap > 0) column[r] = (column[r] ?? 0) + (count * overlap) / (b - a);
      }
    });
    const top = Math.max(...column);
    return top > 0 ? column.map((c) => c / top) : column;
  });
  return { steps: series.map((s) => s.step), lo, hi, rows, cells };
}

// -- chart presets (plot.*) -------------------------------------------------------------------------

export interface ChartSpec {
  preset: string;
  fields: Record<string, string>;
  title?: string;
}

export function chartOf(value: Descriptor | null | undefined): ChartSpec | null {
  const chart = value?.chart as ChartSpec | undefined;
  return chart && typeof chart.preset === "string" ? { ...chart, fields: chart.fields ?? {} } : null;
}

function column(columns: string[], name: string | undefined): number {
  return name === undefined ? -1 : columns.indexOf(name);
}

export interface Confusion {
  actual: string[];
  predicted: string[];
  counts: number[][];
  max: number;
}

/** A confusion matrix from its table: one row per (actual, predicted) pair with a count. */
export function confusionOf(columns: string[], data: Cell[][], fields: Record<string, string>): Confusion {
  const ia = column(columns, fields.Actual ?? "Actual");
  const ip = column(columns, fields.Predicted ?? "Predicted");
  const ic = column(columns, fields.nPredictions ?? "nPredictions");
  const actual: string[] = [];
  const predicted: string[] = [];
  for (const row of data) {
    const a = String(row[ia]);
    const p = String(row[ip]);
    if (!actual.includes(a)) actual.push(a);
    if (!predicted.includes(p)) predicted.push(p);
  }
  const counts = actual.map(() => predicted.map(() => 0));
  let max = 0;
  for (const row of data) {
    const r = actual.indexOf(String(row[ia]));
    const c = predicted.indexOf(String(row[ip]));
    const n = Number(row[ic]) || 0;
    const line = counts[r] as number[];
    line[c] = (line[c] ?? 0) + n;
    max = Math.max(max, line[c] ?? 0);
  }
  return { actual, predicted, counts, max };
}

export interface Curve {
  name: string;
  x: number[];
  y: number[];
}

/** The lines of a preset: one per class (`roc_curve`, `pr_curve`), per `lineKey` (`line_series`),
 *  per `stroke` (`line`), else one; each sorted by x for line presets. */
export function curvesOf(columns: string[], data: Cell[][], spec: ChartSpec): Curve[] {
  const f = spec.fields;
  let ix: number;
  let iy: number;
  let ig = -1;
  if (spec.preset === "line_series") {
    ix = column(columns, f.step ?? "step");
    iy = column(columns, f.lineVal ?? "lineVal");
    ig = column(columns, f.lineKey ?? "lineKey");
  } else {
    ix = column(columns, f.x);
    iy = column(columns, f.y);
    ig = column(columns, f.class ?? f.stroke);
  }
  if (ix < 0 || iy < 0) return [];
  const groups = new Map<string, Curve>();
  for (const row of data) {
    const x = Number(row[ix]);
    const y = Number(row[iy]);
    if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
    const name = ig >= 0 ? String(row[ig]) : spec.fields.y ?? "y";
    let curve = groups.get(name);
    if (!curve) groups.set(name, (curve = { name, x: [], y: [] }));
    curve.x.push(x);
    curve.y.push(y);
  }
  const curves = [...groups.values()];
  if (spec.preset !== "scatter") {
    for (const c of curves) {
      const order = c.x.map((_, i) => i).sort((a, b) => (c.x[a] ?? 0) - (c.x[b] ?? 0));
      c.x = order.map((i) => c.x[i] ?? 0);
      c.y = order.map((i) => c.y[i] ?? 0);
    }
  }
  return curves;
}

/** Bars of a `bar` preset (label, value) or the counts of a `histogram` preset's values in `bins` bins. */
export function barsOf(columns: string[], data: Cell[][], spec: ChartSpec, bins = 20): { label: string; value: number }[] {
  if (spec.preset === "bar") {
    const il = column(columns, spec.fields.label);
    const iv = column(columns, spec.fields.value);
    if (il < 0 || iv < 0) return [];
    return data.map((row) => ({ label: String(row[il]), value: Number(row[iv]) || 0 }));
  }
  const iv = column(columns, spec.fields.value);
  const values = data.map((row) => Number(row[iv])).filter((v) => Number.isFinite(v));
  if (!values.length) return [];
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const width = hi > lo ? (hi - lo) / bins : 1;
  const counts = new Array<number>(hi > lo ? bins : 1).fill(0);
  for (const v of values) counts[Math.min(counts.length - 1, Math.floor((v - lo) / width))] += 1;
  return counts.map((value, i) => ({ label: formatEdge(lo + i * width), value }));
}

function formatEdge(v: number): string {
  return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(Math.round(v * 100) / 100);
}
