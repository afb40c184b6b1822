// The panel grid: sections of panels (line charts of one or more metrics, media panels), drawn when
// scrolled to. `LayoutGrid` shows any layout and, given edit callbacks, lets the user move (drag a
// panel's handle onto another panel or section), resize (drag its corner), edit and remove panels;
// `PanelGrid` is the automatic, read-only layout of a set of keys (system metrics, the run page).
import type { JSX } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { type GroupSeries, type KeyInfo, type Series, type Stream, api, errorText } from "../api";
import { PALETTE } from "../lib/colors";
import { loadSeries } from "../lib/seriesCache";
import { type KeyKind, type Layout, type PanelSpec, type SectionSpec, MAX_H, MAX_W, autoLayout, panelTitle } from "../lib/workspaceLayout";
import { Chart, type ChartLine, type XKind } from "./Chart";
import { MediaPanel, mediaKindOf } from "./media/MediaPanel";

export interface VisualRun {
  runId: string;
  incarnation: string;
  label: string;
  color: string;
  version: string;
  /** Running: its charts show the live state (new points are appended, lib/seriesCache.ts). */
  live?: boolean;
}

/** Runs charted together: their mean as a line with a min–max band (computed by the server). */
export interface VisualGroup {
  name: string;
  label: string;
  color: string;
  incarnations: string[];
  version: string;
}

export interface ChartSettings {
  x: string;
  smoothing: number;
  logScale: boolean;
}

export const HIDDEN_KEYS = new Set(["_step", "_runtime", "_timestamp"]);

/** Height of a chart one row high, and what each further row adds. */
const CHART_HEIGHT = 220;
const ROW_HEIGHT = 290;

export function xKindOf(x: string): XKind {
  if (x === "_step") return "step";
  if (x === "_runtime") return "relative";
  if (x === "_timestamp") return "wall";
  return "metric";
}

export function xLabelOf(x: string): string {
  if (x === "_step") return "Step";
  if (x === "_runtime") return "Relative time";
  if (x === "_timestamp") return "Wall time";
  return x;
}

/** The section a history key belongs to: its prefix before the last "/". */
export function sectionOf(key: string): string {
  const cut = key.lastIndexOf("/");
  return cut > 0 ? key.slice(0, cut) : "Charts";
}

/** System metric keys grouped by their first word (cpu, memory, disk, network, gpu, ...). */
const SYSTEM_SECTIONS: Record<string, string> = { cpu: "CPU", gpu: "GPU", proc: "Process", memory: "Memory", disk: "Disk", network: "Network" };

export function systemSectionOf(key: string): string {
  const word = (key.split(/[._]/)[0] || key).toLowerCase();
  return SYSTEM_SECTIONS[word] ?? word.charAt(0).toUpperCase() + word.slice(1);
}

/** What the layout needs to know of each listed key: numeric, or the media panel kind. */
export function keyKinds(keys: Record<string, KeyInfo>): Record<string, KeyKind> {
  const out: Record<string, KeyKind> = {};
  for (const [key, info] of Object.entries(keys)) out[key] = { numeric: info.numeric, media: mediaKindOf(info.media_type) };
  return out;
}

// Panels on screen load first; panels just below the fold wait until those are drawn, so they
// compete with them neither for the server nor for the page's main thread.
let onScreenLoading = 0;

function whenOnScreenLoaded(signal: { cancelled: boolean }, done: () => void): void {
  const started = performance.now();
  const tick = () => {
    if (signal.cancelled) return;
    if (onScreenLoading <= 0 || performance.now() - started > 5000) done();
    else window.setTimeout(tick, 50);
  };
  tick();
}

/** The lines of one chart: a run's (or group's) colour when it shows one key; with several keys,
 * one colour per key when one run is shown, else the run's colour, dashed for the second key on. */
function lineStyle(keyIndex: number, keyCount: number, ownerCount: number, color: string): { color: string; dash?: number[] } {
  if (keyCount <= 1) return { color };
  if (ownerCount <= 1) return { color: PALETTE[keyIndex % PALETTE.length] };
  const dashes = [undefined, [6, 4], [2, 3], [10, 3, 2, 3]];
  return { color, dash: dashes[keyIndex % dashes.length] };
}

function ChartPanel({
  keys,
  title,
  runs,
  groups,
  stream,
  settings,
  syncKey,
  height,
  box,
}: {
  keys: string[];
  title: string;
  runs: VisualRun[];
  groups: VisualGroup[] | null;
  stream: Stream;
  settings: ChartSettings;
  syncKey: string;
  height: number;
  box: { current: HTMLDivElement | null };
}) {
  // Min and max per pixel column is all a line chart can show (more points only cost time).
  const buckets = (): number => Math.max(200, Math.min(1000, Math.round(box.current?.clientWidth || 500)));
  const [visible, setVisible] = useState(false);
  const [found, setFound] = useState<Map<string, Map<string, Series>> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [zoom, setZoom] = useState<[number, number] | null>(null);
  const [detail, setDetail] = useState<Map<string, Series> | null>(null);
  const [grouped, setGrouped] = useState<GroupSeries[] | null>(null);
  const keySignature = keys.join("\u0000");

  const counted = useRef(false);
  const settle = () => {
    if (!counted.current) return;
    counted.current = false;
    // Counted down once the page is idle again, that is once this panel's chart is drawn.
    const release = () => {
      onScreenLoading -= 1;
    };
    if (typeof window.requestIdleCallback === "function") window.requestIdleCallback(release, { timeout: 1000 });
    else setTimeout(release, 50);
  };
  useEffect(() => {
    const element = box.current;
    if (!element) return undefined;
    const waiting = { cancelled: false };
    const observer = new IntersectionObserver((entries) => {
      const entry = entries.find((e) => e.isIntersecting);
      if (!entry) return;
      observer.disconnect();
      const rect = entry.boundingClientRect;
      if (rect.top < window.innerHeight && rect.bottom > 0) {
        counted.current = true;
        onScreenLoading += 1;
        setVisible(true);
      } else whenOnScreenLoaded(waiting, () => setVisible(true));
    }, { rootMargin: "300px" });
    observer.observe(element);
    return () => {
      waiting.cancelled = true;
      observer.disconnect();
      settle();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const signature = runs.map((r) => `${r.incarnation}@${r.version}:${r.color}:${r.label}`).join("|");
  const groupSignature = groups ? groups.map((g) => `${g.name}:${g.version}:${g.incarnations.join(",")}`).join("|") : "";
  useEffect(() => {
    if (!visible || !groups) return undefined;
    const controller = new AbortController();
    api
      .groupSeries(
        { groups: groups.map((g) => ({ name: g.name, incarnations: g.incarnations })), keys, stream, buckets: buckets() },
        controller.signal,
      )
      .then(
        (response) => {
          settle();
          setError(null);
          setGrouped(response.series);
        },
        (err: unknown) => {
          if (!controller.signal.aborted) {
            settle();
            setError(errorText(err));
          }
        },
      );
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [visible, groupSignature, keySignature, stream]);

  useEffect(() => {
    if (!visible || groups) return undefined;
    const controller = new AbortController();
    const targets = runs.map((r) => ({ incarnation: r.incarnation, version: r.version }));
    Promise.all(keys.map((key) => loadSeries(targets, key, settings.x, stream, buckets(), controller.signal))).then(
      (results) => {
        settle();
        setError(null);
        setFound(new Map(keys.map((key, i) => [key, results[i]])));
      },
      (err: unknown) => {
        if (!controller.signal.aborted) {
          settle();
          setError(errorText(err));
        }
      },
    );
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [visible, signature, keySignature, settings.x, stream]);

  // Zoomed in on steps of a downsampled series: fetch that range at full resolution.
  const zoomKey = zoom ? `${Math.floor(zoom[0])}:${Math.ceil(zoom[1])}` : "";
  useEffect(() => {
    setDetail(null);
    if (!zoom || settings.x !== "_step" || !found) return undefined;
    const sampled = runs.filter((r) => keys.some((key) => found.get(key)?.get(r.incarnation)?.sampled));
    if (!sampled.length) return undefined;
    const controller = new AbortController();
    const timer = window.setTimeout(() => {
      api
        .series(
          {
            incarnations: sampled.map((r) => r.incarnation),
            keys,
            x: "_step",
            stream,
            buckets: buckets(),
            min_step: Math.max(0, Math.floor(zoom[0])),
            max_step: Math.max(0, Math.ceil(zoom[1])),
          },
          controller.signal,
        )
        .then((response) => setDetail(new Map(response.series.map((s) => [`${s.key}\u0000${s.incarnation_id}`, s]))))
        .catch(() => undefined);
    }, 150);
    return () => {
      window.clearTimeout(timer);
      controller.abort();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [zoomKey, found, settings.x, keySignature, stream]);

  const lines = useMemo<ChartLine[] | null>(() => {
    const many = keys.length > 1;
    if (groups) {
      if (!grouped) return null;
      const byName = new Map(grouped.map((g) => [`${g.key}\u0000${g.group}`, g]));
      return keys.flatMap((key, k) =>
        groups
          .map((group): ChartLine => {
            const stats = byName.get(`${key}\u0000${group.name}`);
            return {
              id: many ? `${key}\u0000${group.name}` : group.name,
              label: many ? `${group.label} · ${key}` : group.label,
              ...lineStyle(k, keys.length, groups.length, group.color),
              x: stats?.x ?? [],
              y: stats?.mean ?? [],
              band: { lo: stats?.min ?? [], hi: stats?.max ?? [] },
            };
          })
          .filter((line) => line.x.length > 0),
      );
    }
    if (!found) return null;
    return keys.flatMap((key, k) =>
      runs
        .map((run): ChartLine => {
          const series = found.get(key)?.get(run.incarnation);
          let x = series?.x ?? [];
          let y = series?.y ?? [];
          const fine = detail?.get(`${key}\u0000${run.incarnation}`);
          if (fine && zoom && fine.x.length) {
            // Splice the full-resolution range into the overview so the zoom keeps its extent.
            const lo = fine.x[0] ?? zoom[0];
            const hi = fine.x[fine.x.length - 1] ?? zoom[1];
            const before = x.findIndex((v) => v !== null && v >= lo);
            let after = x.length;
            for (let i = x.length - 1; i >= 0; i -= 1) {
              const v = x[i];
              if (v !== null && v <= hi) break;
              after = i;
            }
            const head = before < 0 ? x.length : before;
            x = [...x.slice(0, head), ...fine.x, ...x.slice(after)];
            y = [...y.slice(0, head), ...fine.y, ...y.slice(after)];
          }
          return {
            id: many ? `${key}\u0000${run.incarnation}` : run.incarnation,
            label: many ? `${run.label} · ${key}` : run.label,
            ...lineStyle(k, keys.length, runs.length, run.color),
            x,
            y,
          };
        })
        .filter((line) => line.x.length > 0),
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [found, detail, zoom, runs, groups, grouped, keySignature]);

  if (error) return <div class="chart-empty error">Could not load {title}: {error}</div>;
  if (lines === null) {
    return (
      <div class="chart-loading" aria-busy="true" style={{ height: `${height + 30}px` }}>
        <span class="chart-title">{title}</span>
      </div>
    );
  }
  return (
    <Chart
      title={title}
      lines={lines}
      xKind={xKindOf(settings.x)}
      xLabel={xLabelOf(settings.x)}
      smoothing={settings.smoothing}
      logScale={settings.logScale}
      syncKey={syncKey}
      height={height}
      resolution={buckets()}
      live={runs.some((r) => r.live)}
      onZoom={(range) => setZoom((old) => (range === null ? null : old && old[0] === range[0] && old[1] === range[1] ? old : range))}
    />
  );
}

/** The settings a panel draws with: its own where set, else the workspace's. */
export function effectiveSettings(panel: PanelSpec, workspace: ChartSettings): ChartSettings {
  return {
    x: panel.x || workspace.x,
    smoothing: panel.smoothing ?? workspace.smoothing,
    logScale: panel.log_y ?? workspace.logScale,
  };
}

/** Edit callbacks; without them the grid is read-only. */
export interface LayoutEdits {
  onEdit: (panel: PanelSpec) => void;
  onRemove: (panel: PanelSpec) => void;
  onResize: (panel: PanelSpec, w: number, h: number) => void;
  /** Move `id` before `beforeId` in `sectionId` (to its end when beforeId is null). */
  onMove: (id: string, sectionId: string, beforeId: string | null) => void;
  onAddPanel: (section: SectionSpec) => void;
  sectionMenu?: (section: SectionSpec) => JSX.Element;
}

/** Where a panel dragged to (x, y) lands: before another panel, or at the end of a section. */
function dropTarget(x: number, y: number, moving: string): { element: Element; sectionId: string; beforeId: string | null } | null {
  const under = document.elementFromPoint(x, y);
  if (!under) return null;
  const target = under.closest<HTMLElement>(".panel-editable");
  const grid = (target?.parentElement ?? under.closest("section.section")?.querySelector(".panel-grid-editable") ?? under.closest(".panel-grid-editable")) as HTMLElement | null;
  const sectionId = grid?.dataset.sectionId;
  if (!sectionId) return null;
  if (target && target.dataset.panelId && target.dataset.panelId !== moving) {
    // The right half of a panel means after it.
    const box = target.getBoundingClientRect();
    if (x < box.left + box.width / 2) return { element: target, sectionId, beforeId: target.dataset.panelId };
    const next = target.nextElementSibling as HTMLElement | null;
    return { element: target, sectionId, beforeId: next?.dataset.panelId ?? null };
  }
  if (target) return null; // over itself
  return { element: grid as Element, sectionId, beforeId: null };
}

function PanelFrame({
  panel,
  cols,
  runs,
  groups,
  stream,
  workspace,
  syncKey,
  mediaKind,
  edits,
}: {
  panel: PanelSpec;
  cols: number;
  runs: VisualRun[];
  groups: VisualGroup[] | null;
  stream: Stream;
  workspace: ChartSettings;
  syncKey: string;
  mediaKind: ReturnType<typeof mediaKindOf>;
  edits: LayoutEdits | null;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [preview, setPreview] = useState<{ w: number; h: number } | null>(null);
  const w = Math.min(cols, preview?.w ?? panel.w);
  const h = preview?.h ?? panel.h;
  // Grouped charts are aligned on steps: a panel's own x-axis applies to runs charted one by one.
  const own = effectiveSettings(panel, workspace);
  const settings = groups ? { ...own, x: workspace.x } : own;
  const limit = panel.max_runs ?? null;
  const shownRuns = limit ? runs.slice(0, limit) : runs;
  const shownGroups = groups && limit ? groups.slice(0, limit) : groups;
  const title = panelTitle(panel);
  const height = CHART_HEIGHT + (h - 1) * ROW_HEIGHT;

  const startResize = (event: PointerEvent) => {
    if (!edits || !box.current) return;
    event.preventDefault();
    const grid = box.current.parentElement;
    const gap = 12;
    const colWidth = grid ? (grid.clientWidth - gap * (cols - 1)) / cols : 400;
    const startX = event.clientX;
    const startY = event.clientY;
    const startW = Math.min(cols, panel.w);
    const startH = panel.h;
    let next = { w: startW, h: startH };
    const target = event.currentTarget as HTMLElement;
    target.setPointerCapture?.(event.pointerId);
    const move = (e: PointerEvent) => {
      const w2 = Math.max(1, Math.min(Math.min(cols, MAX_W), Math.round(startW + (e.clientX - startX) / (colWidth + gap))));
      const h2 = Math.max(1, Math.min(MAX_H, Math.round(startH + (e.clientY - startY) / ROW_HEIGHT)));
      if (w2 !== next.w || h2 !== next.h) {
        next = { w: w2, h: h2 };
        setPreview(next);
      }
    };
    const up = () => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      setPreview(null);
      if (next.w !== startW || next.h !== startH) edits.onResize(panel, next.w, next.h);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  };

  const onKeyResize = (event: KeyboardEvent) => {
    if (!edits) return;
    const moves: Record<string, [number, number]> = { ArrowRight: [1, 0], ArrowLeft: [-1, 0], ArrowDown: [0, 1], ArrowUp: [0, -1] };
    const step = moves[event.key];
    if (!step) return;
    event.preventDefault();
    const w2 = Math.max(1, Math.min(MAX_W, panel.w + step[0]));
    const h2 = Math.max(1, Math.min(MAX_H, panel.h + step[1]));
    if (w2 !== panel.w || h2 !== panel.h) edits.onResize(panel, w2, h2);
  };

  // Moving: drag the handle with the pointer; the panel or section under it is marked and, on
  // release, the panel lands before that panel (after it on its right half) or at the section's end.
  const startMove = (event: PointerEvent) => {
    if (!edits || event.button !== 0) return;
    event.preventDefault();
    const frame = box.current;
    let marked: Element | null = null;
    const mark = (element: Element | null) => {
      if (marked === element) return;
      marked?.classList.remove("drop-target");
      element?.classList.add("drop-target");
      marked = element;
    };
    frame?.classList.add("moving");
    const move = (e: PointerEvent) => mark(dropTarget(e.clientX, e.clientY, panel.id)?.element ?? null);
    const up = (e: PointerEvent) => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      frame?.classList.remove("moving");
      mark(null);
      const target = dropTarget(e.clientX, e.clientY, panel.id);
      if (target && target.beforeId !== panel.id) edits.onMove(panel.id, target.sectionId, target.beforeId);
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  };

  return (
    <div
      ref={box}
      class={`panel${edits ? " panel-editable" : ""}${preview ? " resizing" : ""}`}
      data-metric={panel.keys[0]}
      data-metrics={panel.keys.join(",")}
      data-panel-id={panel.id}
      data-kind={panel.kind}
      data-w={w}
      data-h={h}
      data-log={settings.logScale ? "1" : "0"}
      data-smoothing={settings.smoothing}
      data-x={settings.x}
      data-runs={groups ? (shownGroups ?? []).length : shownRuns.length}
      style={{ gridColumn: `span ${w}` }}
    >
      {edits && (
        <div class="panel-tools">
          <span
            class="panel-move"
            role="button"
            tabIndex={-1}
            title="Drag onto another panel or section to move (or choose its section in Edit panel)"
            aria-label={`Move ${title}`}
            onPointerDown={startMove}
          >
            ⠿
          </span>
          <span class="panel-tools-gap" />
          <button type="button" class="btn-icon btn-xs" aria-label={`Edit panel ${title}`} title="Edit panel" onClick={() => edits.onEdit(panel)}>
            <span aria-hidden="true">✎</span>
          </button>
          <button type="button" class="btn-icon btn-xs" aria-label={`Remove panel ${title}`} title="Remove panel" onClick={() => edits.onRemove(panel)}>
            <span aria-hidden="true">✕</span>
          </button>
        </div>
      )}
      {panel.kind === "media" && mediaKind ? (
        // As tall as a chart of the same height; a media panel with more to show scrolls.
        <div class="panel-media-body" style={{ maxHeight: `${height + 40}px` }}>
          <MediaPanel
            metricKey={panel.keys[0]}
            kind={mediaKind}
            runs={shownRuns.map((r) => ({ incarnation_id: r.incarnation, name: r.label, color: r.color }))}
          />
        </div>
      ) : panel.kind === "media" ? (
        <div class="chart-empty" style={{ height: `${height}px` }}>
          {panel.keys[0]}: no media logged under this key by the shown runs.
        </div>
      ) : (
        <ChartPanel
          keys={panel.keys}
          title={title}
          runs={shownRuns}
          groups={shownGroups}
          stream={stream}
          settings={settings}
          syncKey={settings.x === workspace.x ? syncKey : `${syncKey}:${settings.x}`}
          height={height}
          box={box}
        />
      )}
      {edits && (
        <span
          class="panel-resize"
          role="slider"
          tabIndex={0}
          aria-label={`Resize ${title}`}
          aria-valuetext={`${w} column${w === 1 ? "" : "s"} wide, ${h} row${h === 1 ? "" : "s"} high`}
          title="Drag to resize (or use the arrow keys)"
          onPointerDown={startResize}
          onKeyDown={onKeyResize}
        />
      )}
    </div>
  );
}

/** Columns the grid has room for (a panel spans up to that many). */
function useColumns(ref: { current: HTMLElement | null }): number {
  const [cols, setCols] = useState(3);
  useEffect(() => {
    const element = ref.current;
    if (!element) return undefined;
    const measure = () => setCols(Math.max(1, Math.min(MAX_W, Math.floor((element.clientWidth + 12) / 372))));
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  return cols;
}

function SectionGrid({
  section,
  children,
  edits,
}: {
  section: SectionSpec;
  children: (cols: number) => JSX.Element[];
  edits: LayoutEdits | null;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const cols = useColumns(ref);
  return (
    <div
      ref={ref}
      class={`panel-grid${edits ? " panel-grid-editable" : ""}`}
      style={{ gridTemplateColumns: `repeat(${cols}, minmax(0, 1fr))` }}
      data-section-id={section.id}
    >
      {children(cols)}
    </div>
  );
}

/** Panels whose title or keys contain `search` (case-insensitive); every panel when it is empty. */
export function matchesSearch(panel: PanelSpec, search: string): boolean {
  const needle = search.trim().toLowerCase();
  if (!needle) return true;
  return panelTitle(panel).toLowerCase().includes(needle) || panel.keys.some((k) => k.toLowerCase().includes(needle));
}

export function LayoutGrid({
  layout,
  keys,
  runs,
  groups = null,
  stream,
  settings,
  closed,
  onToggle,
  search,
  syncKey,
  edits = null,
  idPrefix = "",
}: {
  layout: Layout;
  keys: Record<string, KeyInfo>;
  runs: VisualRun[];
  groups?: VisualGroup[] | null;
  stream: Stream;
  settings: ChartSettings;
  closed: Set<string>;
  onToggle: (section: string) => void;
  search: string;
  syncKey: string;
  edits?: LayoutEdits | null;
  idPrefix?: string;
}) {
  const sections = layout.sections
    .map((section) => ({ section, panels: section.panels.filter((p) => matchesSearch(p, search) && !(p.keys.length === 1 && p.keys[0] === settings.x && p.kind === "line" && !p.x)) }))
    // While editing, every section shows (an empty one is where panels can be added or dropped).
    .filter(({ panels }) => panels.length > 0 || (edits !== null && !search.trim()));
  if (!sections.length) {
    return <p class="empty">{search ? `No panel matches “${search}”.` : "No metrics logged yet."}</p>;
  }
  return (
    <div class="sections">
      {sections.map(({ section, panels }) => {
        const isOpen = !closed.has(section.name);
        const id = `section-${idPrefix}${stream}-${section.id.replace(/\W+/g, "-")}`;
        return (
          <section class="section" key={section.id} aria-labelledby={id} data-section={section.name}>
            <h3 class="section-head">
              <button type="button" id={id} class="section-toggle" aria-expanded={isOpen} onClick={() => onToggle(section.name)}>
                <span class="chevron" aria-hidden="true">{isOpen ? "▾" : "▸"}</span>
                {section.name}
                <span class="count">{panels.length}</span>
              </button>
              {edits && (
                <span class="section-actions">
                  <button type="button" class="btn btn-xs" onClick={() => edits.onAddPanel(section)} aria-label={`Add panel to ${section.name}`}>
                    + Add panel
                  </button>
                  {edits.sectionMenu?.(section)}
                </span>
              )}
            </h3>
            {isOpen &&
              (panels.length === 0 ? (
                <SectionGrid section={section} edits={edits}>
                  {() => [
                    <p key="empty" class="empty section-empty">
                      No panels here yet: add one, or drag a panel here.
                    </p>,
                  ]}
                </SectionGrid>
              ) : (
                <SectionGrid section={section} edits={edits}>
                  {(cols) =>
                    panels.map((panel) => (
                      <PanelFrame
                        key={panel.id}
                        panel={panel}
                        cols={cols}
                        runs={runs}
                        groups={panel.kind === "media" ? null : groups}
                        stream={stream}
                        workspace={settings}
                        syncKey={syncKey}
                        mediaKind={panel.kind === "media" ? mediaKindOf(keys[panel.keys[0]]?.media_type) : null}
                        edits={edits}
                      />
                    ))
                  }
                </SectionGrid>
              ))}
          </section>
        );
      })}
    </div>
  );
}

/** The automatic layout of `keys`, read-only: one panel per metric (or media key), in sections. */
export function PanelGrid({
  keys,
  runs,
  groups = null,
  stream,
  settings,
  sectionOf: section,
  closed,
  onToggle,
  search,
  syncKey,
}: {
  keys: Record<string, KeyInfo>;
  runs: VisualRun[];
  groups?: VisualGroup[] | null;
  stream: Stream;
  settings: ChartSettings;
  sectionOf: (key: string) => string;
  closed: Set<string>;
  onToggle: (section: string) => void;
  search: string;
  syncKey: string;
}) {
  const layout = useMemo(() => autoLayout(keyKinds(keys), section), [keys, section]);
  return (
    <LayoutGrid
      layout={layout}
      keys={keys}
      runs={runs}
      groups={groups}
      stream={stream}
      settings={settings}
      closed={closed}
      onToggle={onToggle}
      search={search}
      syncKey={syncKey}
    />
  );
}
