// The panel grid: one chart per numeric metric, in sections by key prefix, drawn when scrolled to.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { type GroupSeries, type KeyInfo, type Series, type Stream, api, errorText } from "../api";
import { loadSeries } from "../lib/seriesCache";
import { Chart, type ChartLine, type XKind } from "./Chart";

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

function Panel({
  metric,
  runs,
  groups,
  stream,
  settings,
  syncKey,
}: {
  metric: string;
  runs: VisualRun[];
  groups: VisualGroup[] | null;
  stream: Stream;
  settings: ChartSettings;
  syncKey: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  // Min and max per pixel column is all a line chart can show (more points only cost time).
  const buckets = (): number => Math.max(200, Math.min(1000, Math.round(box.current?.clientWidth || 500)));
  const [visible, setVisible] = useState(false);
  const [found, setFound] = useState<Map<string, Series> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [zoom, setZoom] = useState<[number, number] | null>(null);
  const [detail, setDetail] = useState<Map<string, Series> | null>(null);
  const [grouped, setGrouped] = useState<GroupSeries[] | null>(null);

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
        { groups: groups.map((g) => ({ name: g.name, incarnations: g.incarnations })), keys: [metric], stream, buckets: buckets() },
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
  }, [visible, groupSignature, metric, stream]);

  useEffect(() => {
    if (!visible || groups) return undefined;
    const controller = new AbortController();
    const targets = runs.map((r) => ({ incarnation: r.incarnation, version: r.version }));
    loadSeries(targets, metric, settings.x, stream, buckets(), controller.signal).then(
      (result) => {
        settle();
        setError(null);
        setFound(result);
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
  }, [visible, signature, metric, settings.x, stream]);

  // Zoomed in on steps of a downsampled series: fetch that range at full resolution.
  const zoomKey = zoom ? `${Math.floor(zoom[0])}:${Math.ceil(zoom[1])}` : "";
  useEffect(() => {
    setDetail(null);
    if (!zoom || settings.x !== "_step" || !found) return undefined;
    const sampled = runs.filter((r) => found.get(r.incarnation)?.sampled);
    if (!sampled.length) return undefined;
    const controller = new AbortController();
    const timer = window.setTimeout(() => {
      api
        .series(
          {
            incarnations: sampled.map((r) => r.incarnation),
            keys: [metric],
            x: "_step",
            stream,
            buckets: buckets(),
            min_step: Math.max(0, Math.floor(zoom[0])),
            max_step: Math.max(0, Math.ceil(zoom[1])),
          },
          controller.signal,
        )
        .then((response) => setDetail(new Map(response.series.map((s) => [s.incarnation_id, s]))))
        .catch(() => undefined);
    }, 150);
    return () => {
      window.clearTimeout(timer);
      controller.abort();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [zoomKey, found, settings.x, metric, stream]);

  const lines = useMemo<ChartLine[] | null>(() => {
    if (groups) {
      if (!grouped) return null;
      const byName = new Map(grouped.map((g) => [g.group, g]));
      return groups
        .map((group): ChartLine => {
          const stats = byName.get(group.name);
          return {
            id: group.name,
            label: group.label,
            color: group.color,
            x: stats?.x ?? [],
            y: stats?.mean ?? [],
            band: { lo: stats?.min ?? [], hi: stats?.max ?? [] },
          };
        })
        .filter((line) => line.x.length > 0);
    }
    if (!found) return null;
    return runs
      .map((run) => {
        const series = found.get(run.incarnation);
        let x = series?.x ?? [];
        let y = series?.y ?? [];
        const fine = detail?.get(run.incarnation);
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
        return { id: run.incarnation, label: run.label, color: run.color, x, y };
      })
      .filter((line) => line.x.length > 0);
  }, [found, detail, zoom, runs, groups, grouped]);

  return (
    <div ref={box} class="panel" data-metric={metric}>
      {error ? (
        <div class="chart-empty error">Could not load {metric}: {error}</div>
      ) : lines === null ? (
        <div class="chart-loading" aria-busy="true">
          <span class="chart-title">{metric}</span>
        </div>
      ) : (
        <Chart
          title={metric}
          lines={lines}
          xKind={xKindOf(settings.x)}
          xLabel={xLabelOf(settings.x)}
          smoothing={settings.smoothing}
          logScale={settings.logScale}
          syncKey={syncKey}
          resolution={buckets()}
          live={runs.some((r) => r.live)}
          onZoom={(range) => setZoom((old) => (range === null ? null : old && old[0] === range[0] && old[1] === range[1] ? old : range))}
        />
      )}
    </div>
  );
}

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
  const sections = useMemo(() => {
    const needle = search.trim().toLowerCase();
    const groups = new Map<string, string[]>();
    for (const [key, info] of Object.entries(keys)) {
      if (!info.numeric || HIDDEN_KEYS.has(key) || key === settings.x) continue;
      if (needle && !key.toLowerCase().includes(needle)) continue;
      const name = section(key);
      const list = groups.get(name) ?? [];
      list.push(key);
      groups.set(name, list);
    }
    return [...groups.entries()].sort(([a], [b]) => (a === "Charts" ? -1 : b === "Charts" ? 1 : a.localeCompare(b)));
  }, [keys, search, section, settings.x]);

  if (!sections.length) {
    return <p class="empty">{search ? `No metric matches “${search}”.` : "No metrics logged yet."}</p>;
  }
  return (
    <div class="sections">
      {sections.map(([name, metrics]) => {
        const isOpen = !closed.has(name);
        const id = `section-${stream}-${name.replace(/\W+/g, "-")}`;
        return (
          <section class="section" key={name} aria-labelledby={id}>
            <h3 class="section-head">
              <button type="button" id={id} class="section-toggle" aria-expanded={isOpen} onClick={() => onToggle(name)}>
                <span class="chevron" aria-hidden="true">{isOpen ? "▾" : "▸"}</span>
                {name}
                <span class="count">{metrics.length}</span>
              </button>
            </h3>
            {isOpen && (
              <div class="panel-grid">
                {metrics.map((metric) => (
                  <Panel key={metric} metric={metric} runs={runs} groups={groups} stream={stream} settings={settings} syncKey={syncKey} />
                ))}
              </div>
            )}
          </section>
        );
      })}
    </div>
  );
}
