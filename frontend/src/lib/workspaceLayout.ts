// An editable workspace layout: sections of panels, built automatically from the logged keys until
// the user edits it; then saved on the server (PUT /api/v1/projects/{entity}/{project}/workspace).
// Pure functions only: every edit returns a new layout, so undo-free React state stays simple.

export type PanelKind = "line" | "media";

export interface PanelSpec {
  id: string;
  kind: PanelKind;
  /** History keys the panel shows: several on one line chart, exactly one for media. */
  keys: string[];
  title?: string | null;
  /** Width in grid columns (1–4) and height in rows (1–4). */
  w: number;
  h: number;
  /** Per-panel settings; unset (null/undefined) means the workspace's. */
  x?: string | null;
  smoothing?: number | null;
  log_y?: boolean | null;
  max_runs?: number | null;
}

export interface SectionSpec {
  id: string;
  name: string;
  panels: PanelSpec[];
}

export interface Layout {
  format: 1;
  sections: SectionSpec[];
  /** Keys the layout already accounted for: a key logged later gets a panel, a removed one does not come back. */
  seen_keys: string[];
}

/** What the automatic layout needs to know about a key. */
export interface KeyKind {
  numeric: boolean;
  /** The media panel kind for a media key (MediaPanel's `mediaKindOf`), else null. */
  media: string | null;
}

export const MAX_W = 4;
export const MAX_H = 4;
export const AXIS_KEYS = new Set(["_step", "_runtime", "_timestamp"]);

let counter = 0;

/** A fresh id that matches the server's pattern ([A-Za-z0-9_-]). */
export function newId(prefix = "p"): string {
  counter += 1;
  return `${prefix}${Date.now().toString(36)}${counter.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
}

/** A stable id for an automatic panel or section, derived from its key or name. */
export function autoId(prefix: string, name: string): string {
  let hash = 0;
  for (let i = 0; i < name.length; i += 1) hash = (Math.imul(hash, 31) + name.charCodeAt(i)) | 0;
  const slug = name.replace(/[^A-Za-z0-9_-]+/g, "-").slice(0, 40);
  return `${prefix}-${slug}-${(hash >>> 0).toString(36)}`;
}

function sectionOrder(a: string, b: string): number {
  return a === "Charts" ? -1 : b === "Charts" ? 1 : a.localeCompare(b);
}

/** Whether a key gets a panel of its own in the automatic layout. */
export function chartable(key: string, kind: KeyKind | undefined): boolean {
  if (!kind || AXIS_KEYS.has(key)) return false;
  return kind.numeric || kind.media !== null;
}

function autoPanel(key: string, kind: KeyKind): PanelSpec {
  return { id: autoId("p", key), kind: kind.media !== null && !kind.numeric ? "media" : "line", keys: [key], w: 1, h: 1 };
}

/** The automatic layout: one panel per chartable key, in sections by `sectionOf` ("Charts" first). */
export function autoLayout(keys: Record<string, KeyKind>, sectionOf: (key: string) => string): Layout {
  const sections = new Map<string, PanelSpec[]>();
  for (const key of Object.keys(keys).sort()) {
    const kind = keys[key];
    if (!chartable(key, kind)) continue;
    const name = sectionOf(key);
    const list = sections.get(name) ?? [];
    list.push(autoPanel(key, kind));
    sections.set(name, list);
  }
  return {
    format: 1,
    sections: [...sections.entries()].sort(([a], [b]) => sectionOrder(a, b)).map(([name, panels]) => ({ id: autoId("s", name), name, panels })),
    seen_keys: [],
  };
}

export function panelKeys(layout: Layout): Set<string> {
  return new Set(layout.sections.flatMap((s) => s.panels.flatMap((p) => p.keys)));
}

/** A saved layout with panels added for keys logged since it was saved (neither seen nor shown). */
export function withNewKeys(layout: Layout, keys: Record<string, KeyKind>, sectionOf: (key: string) => string): Layout {
  const known = new Set([...layout.seen_keys, ...panelKeys(layout)]);
  const fresh = Object.keys(keys)
    .sort()
    .filter((k) => !known.has(k) && chartable(k, keys[k]));
  if (!fresh.length) return layout;
  const sections = layout.sections.map((s) => ({ ...s, panels: [...s.panels] }));
  for (const key of fresh) {
    const name = sectionOf(key);
    let section = sections.find((s) => s.name === name);
    if (!section) {
      section = { id: autoId("s", name), name, panels: [] };
      sections.push(section);
    }
    section.panels.push(autoPanel(key, keys[key]));
  }
  return { ...layout, sections };
}

/** The layout to save: every key known now is marked seen, so removed panels stay removed. */
export function forSaving(layout: Layout, keys: Iterable<string>): Layout {
  const seen = new Set(layout.seen_keys);
  for (const key of keys) if (!AXIS_KEYS.has(key)) seen.add(key);
  for (const key of panelKeys(layout)) seen.add(key);
  return { ...layout, format: 1, seen_keys: [...seen].sort().slice(0, 5000) };
}

function mapPanels(layout: Layout, fn: (panel: PanelSpec) => PanelSpec | null): Layout {
  return {
    ...layout,
    sections: layout.sections.map((s) => ({ ...s, panels: s.panels.map(fn).filter((p): p is PanelSpec => p !== null) })),
  };
}

export function findPanel(layout: Layout, id: string): { section: SectionSpec; index: number; panel: PanelSpec } | null {
  for (const section of layout.sections) {
    const index = section.panels.findIndex((p) => p.id === id);
    if (index >= 0) return { section, index, panel: section.panels[index] };
  }
  return null;
}

export function addPanel(layout: Layout, sectionId: string, panel: PanelSpec): Layout {
  return { ...layout, sections: layout.sections.map((s) => (s.id === sectionId ? { ...s, panels: [...s.panels, panel] } : s)) };
}

export function removePanel(layout: Layout, id: string): Layout {
  return mapPanels(layout, (p) => (p.id === id ? null : p));
}

export function updatePanel(layout: Layout, id: string, patch: Partial<PanelSpec>): Layout {
  return mapPanels(layout, (p) => (p.id === id ? normalizePanel({ ...p, ...patch }) : p));
}

export function resizePanel(layout: Layout, id: string, w: number, h: number): Layout {
  return updatePanel(layout, id, { w, h });
}

/** Move a panel to `index` of section `toSection` (the end when index is past it or negative). */
export function movePanel(layout: Layout, id: string, toSection: string, index: number): Layout {
  const found = findPanel(layout, id);
  if (!found || !layout.sections.some((s) => s.id === toSection)) return layout;
  let at = index;
  // Moving down within a section: the panel's own slot disappears before the target.
  if (found.section.id === toSection && at > found.index) at -= 1;
  const sections = layout.sections.map((s) => ({ ...s, panels: s.panels.filter((p) => p.id !== id) }));
  return {
    ...layout,
    sections: sections.map((s) => {
      if (s.id !== toSection) return s;
      const panels = [...s.panels];
      panels.splice(at < 0 || at > panels.length ? panels.length : at, 0, found.panel);
      return { ...s, panels };
    }),
  };
}

export function addSection(layout: Layout, name: string): Layout {
  return { ...layout, sections: [...layout.sections, { id: newId("s"), name: name.slice(0, 128), panels: [] }] };
}

export function renameSection(layout: Layout, id: string, name: string): Layout {
  return { ...layout, sections: layout.sections.map((s) => (s.id === id ? { ...s, name: name.slice(0, 128) } : s)) };
}

/** Remove a section; its panels go to the first other section (or the section stays if it is the only one). */
export function removeSection(layout: Layout, id: string): Layout {
  const gone = layout.sections.find((s) => s.id === id);
  const rest = layout.sections.filter((s) => s.id !== id);
  if (!gone || !rest.length) return layout;
  return { ...layout, sections: rest.map((s, i) => (i === 0 ? { ...s, panels: [...s.panels, ...gone.panels] } : s)) };
}

function clamp(value: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, Math.round(value)));
}

/** Keep a panel within what the server accepts (sizes, smoothing, max runs, one key for media). */
export function normalizePanel(panel: PanelSpec): PanelSpec {
  const keys = [...new Set(panel.keys)].slice(0, panel.kind === "media" ? 1 : 20);
  const out: PanelSpec = { ...panel, keys, w: clamp(panel.w || 1, 1, MAX_W), h: clamp(panel.h || 1, 1, MAX_H) };
  if (out.smoothing !== null && out.smoothing !== undefined) out.smoothing = Math.min(0.99, Math.max(0, out.smoothing));
  if (out.max_runs !== null && out.max_runs !== undefined) out.max_runs = clamp(out.max_runs, 1, 500);
  return out;
}

/** A layout read from the server, with anything this app cannot show dropped. */
export function parseLayout(value: unknown): Layout | null {
  if (!value || typeof value !== "object") return null;
  const raw = value as { sections?: unknown; seen_keys?: unknown };
  if (!Array.isArray(raw.sections)) return null;
  const sections: SectionSpec[] = [];
  for (const s of raw.sections as Record<string, unknown>[]) {
    if (!s || typeof s.id !== "string" || typeof s.name !== "string" || !Array.isArray(s.panels)) continue;
    const panels = (s.panels as Record<string, unknown>[])
      .filter((p) => p && typeof p.id === "string" && Array.isArray(p.keys) && p.keys.length > 0)
      .map((p) => normalizePanel({ ...(p as unknown as PanelSpec), kind: p.kind === "media" ? "media" : "line" }));
    sections.push({ id: s.id, name: s.name, panels });
  }
  const seen = Array.isArray(raw.seen_keys) ? raw.seen_keys.filter((k): k is string => typeof k === "string") : [];
  return { format: 1, sections, seen_keys: seen };
}

/** The title a panel shows: its own, or its keys. */
export function panelTitle(panel: PanelSpec): string {
  return panel.title || panel.keys.join(", ");
}
