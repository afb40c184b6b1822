// Run colours: one colour per run that every view shows (sidebar, table, charts, legend, run page).
//
// The rule, in order:
//  1. a colour the user picked for the run (the workspace's `color` URL parameter, or a pick saved in
//     this browser for the project) wins;
//  2. else the colour the run was first given in this browser, remembered per project, so a run keeps
//     its colour across views, searches, filters and reloads;
//  3. else a new colour: the run's preset (a hash of its id) unless a run shown with it already has
//     that colour, then the next free palette entry. Runs are given colours oldest first, so the
//     runs on screen get distinct colours while the palette lasts (20 entries).
// Group colours are palette entries in group order (distinct up to 20 groups).

/** 20 colours, each at least 25 CIE76 ΔE from every other (no near-duplicate pairs; see colors.test.ts). */
export const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
  "#666611", "#007755", "#ee1177", "#0077ff", "#ff8888", "#dd9955", "#99bb77", "#aa22aa", "#aa3355", "#aaaaee",
];

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

/** A run's preset: where its colour search starts. */
export function presetColor(runId: string): string {
  return PALETTE[hash(runId) % PALETTE.length];
}

/** Distinct colours for `ids` (in the order given): each keeps its preset unless an earlier one took
 * it, then the next free one; the palette is reused only once every entry is taken. */
export function assignColors(ids: string[]): Map<string, string> {
  const taken = new Set<number>();
  const out = new Map<string, string>();
  for (const id of ids) {
    let index = hash(id) % PALETTE.length;
    for (let probe = 0; probe < PALETTE.length && taken.has(index); probe += 1) index = (index + 1) % PALETTE.length;
    taken.add(index);
    if (taken.size === PALETTE.length) taken.clear();
    out.set(id, PALETTE[index]);
  }
  return out;
}

/** Colours for groups, in their order: palette entries one after another. */
export function groupColors(names: string[]): Map<string, string> {
  return new Map(names.map((name, i) => [name, PALETTE[i % PALETTE.length]]));
}

// -- remembered colours -----------------------------------------------------------------------

/** Where colours are kept: localStorage in the app, a plain Map in tests or private mode. */
export interface ColorStore {
  get(key: string): string | null;
  set(key: string, value: string): void;
}

const memoryStore = new Map<string, string>();
const fallback: ColorStore = { get: (k) => memoryStore.get(k) ?? null, set: (k, v) => void memoryStore.set(k, v) };

function browserStore(): ColorStore {
  try {
    if (typeof localStorage !== "undefined") {
      return {
        get: (k) => localStorage.getItem(k),
        set: (k, v) => {
          try {
            localStorage.setItem(k, v);
          } catch {
            fallback.set(k, v); // full or private mode: remembered for this page only
          }
        },
      };
    }
  } catch {
    /* localStorage access itself can throw (sandboxed frames) */
  }
  return fallback;
}

let store: ColorStore | null = null;

/** Use `next` to remember colours (tests); null: the browser's localStorage. */
export function setColorStore(next: ColorStore | null): void {
  store = next;
  scopes.clear();
}

/** The most runs remembered per project; the oldest assignments are forgotten first. */
const MAX_REMEMBERED = 5000;

interface Scope {
  given: Map<string, string>;
  picked: Map<string, string>;
}

const scopes = new Map<string, Scope>();

function storage(): ColorStore {
  if (!store) store = browserStore();
  return store;
}

function readMap(key: string): Map<string, string> {
  try {
    const parsed: unknown = JSON.parse(storage().get(key) ?? "{}");
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      return new Map(Object.entries(parsed as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === "string" && /^#[0-9a-f]{6}$/.test(e[1])));
    }
  } catch {
    /* unreadable: start afresh */
  }
  return new Map();
}

function scopeOf(project: string): Scope {
  let scope = scopes.get(project);
  if (!scope) {
    scope = { given: readMap(`branchline.colors:${project}`), picked: readMap(`branchline.colorPicks:${project}`) };
    scopes.set(project, scope);
  }
  return scope;
}

function save(project: string, scope: Scope): void {
  while (scope.given.size > MAX_REMEMBERED) {
    const oldest = scope.given.keys().next().value;
    if (oldest === undefined) break;
    scope.given.delete(oldest);
  }
  storage().set(`branchline.colors:${project}`, JSON.stringify(Object.fromEntries(scope.given)));
}

if (typeof window !== "undefined") {
  // Another tab gave or picked colours: read them again.
  window.addEventListener("storage", (event) => {
    if (event.key?.startsWith("branchline.color")) scopes.clear();
  });
}

export interface ColorRun {
  run_id: string;
  created_at: number;
}

/**
 * The colour of each of `runs` in `project` ("entity/project"), by the rule at the top of this file.
 * `runs` are those a view shows, charted ones first if the view charts some of them; `overrides` are
 * colours picked for this view (the URL parameter).
 */
export function runColors(project: string, runs: ColorRun[], overrides?: Map<string, string>): Map<string, string> {
  const scope = scopeOf(project);
  const out = new Map<string, string>();
  const taken = new Set<string>();
  const fresh: ColorRun[] = [];
  for (const run of runs) {
    const known = overrides?.get(run.run_id) ?? scope.picked.get(run.run_id) ?? scope.given.get(run.run_id);
    if (known) {
      out.set(run.run_id, known);
      taken.add(known);
    } else fresh.push(run);
  }
  if (!fresh.length) return out;
  // Oldest first: a run created later never takes the colour of one created before it.
  fresh.sort((a, b) => a.created_at - b.created_at || (a.run_id < b.run_id ? -1 : 1));
  for (const run of fresh) {
    let index = hash(run.run_id) % PALETTE.length;
    for (let probe = 0; probe < PALETTE.length && taken.has(PALETTE[index]); probe += 1) index = (index + 1) % PALETTE.length;
    const color = PALETTE[index];
    taken.add(color);
    if (PALETTE.every((c) => taken.has(c))) taken.clear();
    out.set(run.run_id, color);
    scope.given.set(run.run_id, color);
  }
  save(project, scope);
  return out;
}

/** The colour of one run (a run page, a search result): the same as every other view gives it. */
export function runColor(project: string, run: ColorRun, overrides?: Map<string, string>): string {
  return runColors(project, [run], overrides).get(run.run_id) ?? presetColor(run.run_id);
}

/** Save the user's pick for a run (every view then shows it); null forgets the pick. */
export function pickRunColor(project: string, runId: string, color: string | null): void {
  const scope = scopeOf(project);
  if (color === null) scope.picked.delete(runId);
  else scope.picked.set(runId, color.toLowerCase());
  storage().set(`branchline.colorPicks:${project}`, JSON.stringify(Object.fromEntries(scope.picked)));
}

// -- URL and CSS helpers ----------------------------------------------------------------------

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
