// Formatting of times, durations, sizes and values for display.

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return `${m}m ${sec}s`;
}

export function formatDate(epoch: number | null | undefined): string {
  if (epoch === null || epoch === undefined) return "–";
  const date = new Date(epoch * 1000);
  return date.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function formatAgo(epoch: number | null | undefined): string {
  if (epoch === null || epoch === undefined) return "never";
  const delta = Date.now() / 1000 - epoch;
  if (delta < 45) return "just now";
  if (delta < 3600) return `${Math.round(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.round(delta / 3600)} h ago`;
  if (delta < 86400 * 30) return `${Math.round(delta / 86400)} days ago`;
  return formatDate(epoch);
}

export function formatBytes(size: number): string {
  if (size < 1024) return `${size} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return value.toLocaleString("en-US");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-5 || abs >= 1e9)) return value.toExponential(3).replace(/\.?0+e/, "e");
  return Number(value.toPrecision(5)).toString();
}

export function formatValue(value: unknown): string {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && "_type" in value) return `⟨${String((value as { _type: unknown })._type)}⟩`;
  return JSON.stringify(value);
}

/** Keep `keep` characters of `text`, dropping from the start, middle or end. */
export function truncate(text: string, keep: number, where: "start" | "middle" | "end"): string {
  if (text.length <= keep) return text;
  if (where === "start") return `…${text.slice(text.length - keep + 1)}`;
  if (where === "middle") {
    const head = Math.ceil((keep - 1) / 2);
    return `${text.slice(0, head)}…${text.slice(text.length - (keep - 1 - head))}`;
  }
  return `${text.slice(0, keep - 1)}…`;
}

/** Where a long run name is shortened: at its end, in its middle (the default, as W&B's) or at its start. */
export type TruncMode = "start" | "middle" | "end";

export const TRUNC_MODES: TruncMode[] = ["middle", "end", "start"];

/** The truncation mode a URL parameter names; "beginning" is accepted for "start"; anything else is the default, middle. */
export function parseTruncMode(value: string | null | undefined): TruncMode {
  if (value === "beginning") return "start";
  return value === "start" || value === "end" ? value : "middle";
}

/** A run name in at most `maxChars` characters (an ellipsis included), shortened where `mode` says:
 * `truncateName("resnet-adam-sweep-fork-3", 16, "middle")` is "resnet-a…-fork-3". */
export function truncateName(name: string, maxChars: number, mode: TruncMode = "middle"): string {
  return truncate(name, Math.max(2, Math.floor(maxChars)), mode);
}
