// Run colours: a stable preset per run id, overridable per run (kept in the URL).

export const PALETTE = [
  "#2f6fe4", "#e8590c", "#2b9348", "#c2255c", "#7048e8", "#0c8599", "#d9480f", "#5c940d",
  "#a61e4d", "#1864ab", "#f08c00", "#087f5b", "#862e9c", "#e03131", "#3b5bdb", "#66a80f",
];

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

export function presetColor(runId: string): string {
  return PALETTE[hash(runId) % PALETTE.length];
}

/** Distinct preset colours for `runIds` (in a stable order): each run keeps its own preset unless
 * another run already took it, then the next free one. */
export function assignColors(runIds: string[]): Map<string, string> {
  const taken = new Set<number>();
  const out = new Map<string, string>();
  for (const id of runIds) {
    let index = hash(id) % PALETTE.length;
    for (let probe = 0; probe < PALETTE.length && taken.has(index); probe += 1) index = (index + 1) % PALETTE.length;
    taken.add(index);
    if (taken.size === PALETTE.length) taken.clear();
    out.set(id, PALETTE[index]);
  }
  return out;
}

/** Parse `id:rrggbb,id:rrggbb` (the `color` URL parameter). */
export function parseColors(param: string | null): Map<string, string> {
  const colors = new Map<string, string>();
  for (const part of (param ?? "").split(",")) {
    const [id, hex] = part.split(":");
    if (id && hex && /^[0-9a-fA-F]{6}$/.test(hex)) colors.set(id, `#${hex.toLowerCase()}`);
  }
  return colors;
}

export function serializeColors(colors: Map<string, string>): string {
  return [...colors.entries()].map(([id, hex]) => `${id}:${hex.replace("#", "")}`).join(",");
}

export function withAlpha(hex: string, alpha: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}
