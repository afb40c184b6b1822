// The runs table's column customisations (order, pins, hidden columns), remembered per project, and
// the plain text of a column for a run: the workspace's run selector shows the pinned columns too.
import type { RunItem } from "../api";
import { lookup } from "./flatten";
import { formatDate, formatDuration, formatValue, parseTruncMode, type TruncMode } from "./format";

/** Column order and pins, remembered per project (pins are also in the URL as `pin`). */
export interface ColumnLayout {
  order: string[];
  pinned: string[];
}

export const BASE_COLUMN_LABELS: Record<string, string> = {
  name: "Name",
  state: "State",
  created: "Created",
  runtime: "Runtime",
  notes: "Notes",
  tags: "Tags",
  group: "Group",
  job_type: "Job type",
};

function hiddenKey(entity: string, project: string): string {
  return `branchline.hiddenColumns.${entity}/${project}`;
}

function layoutKey(entity: string, project: string): string {
  return `branchline.columnLayout.${entity}/${project}`;
}

export function loadHidden(entity: string, project: string): Set<string> {
  try {
    const parsed = JSON.parse(localStorage.getItem(hiddenKey(entity, project)) ?? "[]") as unknown;
    return new Set(Array.isArray(parsed) ? parsed.filter((id): id is string => typeof id === "string") : []);
  } catch {
    return new Set();
  }
}

export function saveHidden(entity: string, project: string, hidden: Set<string>): void {
  try {
    localStorage.setItem(hiddenKey(entity, project), JSON.stringify([...hidden]));
  } catch {
    /* not persisted (storage full or disabled) */
  }
}

export function loadLayout(entity: string, project: string, pinParam: string | null): ColumnLayout {
  let stored: ColumnLayout = { order: [], pinned: [] };
  try {
    const parsed = JSON.parse(localStorage.getItem(layoutKey(entity, project)) ?? "null") as Partial<ColumnLayout> | null;
    if (parsed) stored = { order: Array.isArray(parsed.order) ? parsed.order : [], pinned: Array.isArray(parsed.pinned) ? parsed.pinned : [] };
  } catch {
    /* defaults */
  }
  if (pinParam !== null) stored = { ...stored, pinned: pinParam.split(",").filter(Boolean) };
  return stored;
}

export function saveLayout(entity: string, project: string, layout: ColumnLayout): void {
  try {
    localStorage.setItem(layoutKey(entity, project), JSON.stringify(layout));
  } catch {
    /* not persisted */
  }
}

/** The pinned columns the run selector shows next to names: pinned and not hidden, in pin order. */
export function selectorColumns(layout: ColumnLayout, hidden: Set<string>): string[] {
  return layout.pinned.filter((id) => id !== "name" && !hidden.has(id));
}

/** A column's heading: "Runtime", "config.lr", "summary.loss". */
export function columnLabel(id: string): string {
  if (id.startsWith("config:")) return `config.${id.slice(7)}`;
  if (id.startsWith("summary:")) return `summary.${id.slice(8)}`;
  return BASE_COLUMN_LABELS[id] ?? id;
}

/** Seconds the Runtime column shows for a run (one place, so the table, groups and sidebar agree):
 * the wall-clock time from start to end, pauses included (`duration` is the active time). */
export function runtimeSeconds(run: Pick<RunItem, "duration" | "runtime">): number {
  return run.runtime;
}

/** A column's value for a run as plain text ("–" when the run has none). */
export function columnText(run: RunItem, id: string): string {
  if (id.startsWith("config:")) return formatValue(lookup(run.config, id.slice(7)));
  if (id.startsWith("summary:")) return formatValue(lookup(run.summary, id.slice(8)));
  switch (id) {
    case "name":
      return run.name;
    case "state":
      return run.state;
    case "created":
      return formatDate(run.created_at);
    case "runtime":
      return formatDuration(runtimeSeconds(run));
    case "notes":
      return run.notes ? run.notes.split("\n")[0] : "–";
    case "tags":
      return run.tags.length ? run.tags.join(", ") : "–";
    case "group":
      return run.group || "–";
    case "job_type":
      return run.job_type || "–";
    default:
      return "–";
  }
}

function truncKey(entity: string, project: string): string {
  return `branchline.truncate.${entity}/${project}`;
}

/** How run names are truncated in this project: the URL's `trunc` if set, else the remembered
 * choice, else the middle (W&B's default). */
export function loadTruncMode(entity: string, project: string, param: string | null): TruncMode {
  if (param) return parseTruncMode(param);
  try {
    return parseTruncMode(localStorage.getItem(truncKey(entity, project)));
  } catch {
    return "middle";
  }
}

export function saveTruncMode(entity: string, project: string, mode: TruncMode): void {
  try {
    localStorage.setItem(truncKey(entity, project), mode);
  } catch {
    /* not persisted */
  }
}
