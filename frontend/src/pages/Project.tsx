// A project: the toolbar shared by its Workspace and Runs tabs, the runs sidebar and the panel grid.
import { useMemo, useState } from "preact/hooks";
import { api, errorText, type KeyInfo, type ProjectDetail, type RunItem } from "../api";
import { ChartControls, readChartSettings, readClosed, toggleClosed } from "../components/ChartControls";
import { ColorPicker } from "../components/ColorPicker";
import { FilterEditor, filterCount } from "../components/FilterBar";
import { BASE_FIELDS } from "../lib/filterFields";
import { Menu } from "../components/Menu";
import { PanelGrid, type VisualGroup, type VisualRun, sectionOf } from "../components/PanelGrid";
import { EditableWorkspace } from "../components/EditableWorkspace";
import { runMenuItems } from "../components/runActions";
import { RunsTable } from "../components/RunsTable";
import { StateBadge } from "../components/StateBadge";
import { groupColors as paletteForGroups, parseColors, pickRunColor, presetColor, runColors, serializeColors } from "../lib/colors";
import { LiveBadge } from "../components/LiveBadge";
import { lookup } from "../lib/flatten";
import { formatValue, truncateName, type TruncMode } from "../lib/format";
import { columnLabel, columnText, loadHidden as loadHiddenColumns, loadLayout, loadTruncMode, saveTruncMode, selectorColumns } from "../lib/runColumns";
import { useAsync, usePoll } from "../lib/hooks";
import { projectPath, runPath, runQueryFrom } from "../paths";
import { navigate, setQuery, useLocation, withQuery } from "../router";

/** Characters of a run name the sidebar shows (about its width at 14px) before truncating it. */
const SIDEBAR_NAME_CHARS = 21;

const STATES = ["running", "finished", "failed", "crashed", "killed", "preempted", "pending"];
const SORTS: [string, string][] = [
  ["-created_at", "Newest first"],
  ["+created_at", "Oldest first"],
  ["+display_name", "Name A→Z"],
  ["-display_name", "Name Z→A"],
  ["-runtime", "Longest runtime"],
  ["-heartbeat_at", "Latest activity"],
];

export function filterFields(detail: ProjectDetail | undefined): string[] {
  if (!detail) return BASE_FIELDS;
  return [
    ...BASE_FIELDS,
    ...detail.columns.config.map((k) => `config.${k}`),
    ...detail.columns.summary.map((k) => `summary_metrics.${k}`),
  ];
}

function Toolbar({ entity, project, tab, detail }: { entity: string; project: string; tab: "workspace" | "table"; detail?: ProjectDetail }) {
  const { query } = useLocation();
  const [filtersOpen, setFiltersOpen] = useState(false);
  const count = filterCount(query.get("f"));
  const keep = (path: string) => withQuery(path, Object.fromEntries(["q", "state", "f", "sort", "trunc"].map((k) => [k, query.get(k)])));
  const summarySorts: [string, string][] = (detail?.columns.summary ?? []).slice(0, 20).flatMap((k): [string, string][] => [
    [`+summary_metrics.${k}`, `Lowest ${k}`],
    [`-summary_metrics.${k}`, `Highest ${k}`],
  ]);
  const sort = query.get("sort") || "-created_at";
  return (
    <div class="toolbar-wrap">
      <div class="toolbar">
        <nav class="tabs" aria-label="Project views">
          <a href={keep(projectPath(entity, project))} class={tab === "workspace" ? "tab active" : "tab"} aria-current={tab === "workspace" ? "page" : undefined}>
            Workspace
          </a>
          <a href={keep(`${projectPath(entity, project)}/table`)} class={tab === "table" ? "tab active" : "tab"} aria-current={tab === "table" ? "page" : undefined}>
            Runs
          </a>
        </nav>
        <div class="toolbar-controls">
          <label class="control">
            <span class="sr-only">Search runs by name</span>
            <input
              type="search"
              class="input"
              placeholder="Search runs…"
              value={query.get("q") ?? ""}
              onInput={(event) => setQuery({ q: (event.target as HTMLInputElement).value })}
            />
          </label>
          <label class="control">
            <span class="sr-only">State</span>
            <select class="input" value={query.get("state") ?? ""} onChange={(event) => setQuery({ state: (event.target as HTMLSelectElement).value }, false)}>
              <option value="">All states</option>
              {STATES.map((s) => (
                <option key={s} value={s}>
                  {s.charAt(0).toUpperCase() + s.slice(1)}
                  {detail?.state_counts[s] ? ` (${detail.state_counts[s]})` : ""}
                </option>
              ))}
            </select>
          </label>
          <button type="button" class={count ? "btn btn-active" : "btn"} aria-expanded={filtersOpen} onClick={() => setFiltersOpen(!filtersOpen)}>
            Filter{count ? ` (${count})` : ""}
          </button>
          <label class="control">
            <span class="sr-only">Sort runs</span>
            <select class="input" value={sort} onChange={(event) => setQuery({ sort: (event.target as HTMLSelectElement).value === "-created_at" ? null : (event.target as HTMLSelectElement).value }, false)}>
              {[...SORTS, ...summarySorts].map(([value, label]) => (
                <option key={value} value={value}>
                  Sort: {label}
                </option>
              ))}
              {!SORTS.some(([v]) => v === sort) && !summarySorts.some(([v]) => v === sort) && <option value={sort}>Sort: {sort}</option>}
            </select>
          </label>
        </div>
      </div>
      {filtersOpen && <FilterEditor filterJson={query.get("f")} fields={filterFields(detail)} onClose={() => setFiltersOpen(false)} />}
    </div>
  );
}

/** The value a run is grouped by (a config path), as the group's name. */
export function groupValue(run: RunItem, path: string): string {
  const value = lookup(run.config, path);
  return value === undefined || value === null ? "(none)" : formatValue(value);
}

export interface RunGroup {
  name: string;
  runs: RunItem[];
}

/** Runs in groups by a config path, groups in the order their first run appears. */
export function groupRuns(runs: RunItem[], path: string): RunGroup[] {
  const groups = new Map<string, RunItem[]>();
  for (const run of runs) {
    const name = groupValue(run, path);
    const list = groups.get(name) ?? [];
    list.push(run);
    groups.set(name, list);
  }
  return [...groups.entries()].map(([name, members]) => ({ name, runs: members }));
}

function RunsSidebar({
  entity,
  project,
  runs,
  total,
  visualized,
  hidden,
  colors,
  presets,
  show,
  trunc,
  onChanged,
  onMore,
  projects,
  configColumns,
  groupBy,
  groups,
  groupColors,
}: {
  entity: string;
  project: string;
  runs: RunItem[];
  total: number;
  visualized: Set<string>;
  hidden: Set<string>;
  colors: Map<string, string>;
  presets: Map<string, string>;
  show: number;
  trunc: TruncMode;
  onChanged: () => void;
  onMore: () => void;
  projects: string[];
  configColumns: string[];
  groupBy: string;
  groups: RunGroup[] | null;
  groupColors: Map<string, string>;
}) {
  const toggle = (runId: string) => {
    const next = new Set(hidden);
    if (next.has(runId)) next.delete(runId);
    else next.add(runId);
    setQuery({ hide: [...next].join(",") });
  };
  const recolor = (runId: string, hex: string) => {
    const next = new Map(colors);
    next.set(runId, hex);
    pickRunColor(`${entity}/${project}`, runId, hex); // every view of the run shows the pick
    setQuery({ color: serializeColors(next) });
  };
  const { query } = useLocation();
  // The runs table's pinned (and not hidden) columns show next to the names, as in W&B.
  const pinnedColumns = selectorColumns(loadLayout(entity, project, query.get("pin")), loadHiddenColumns(entity, project)).slice(0, 3);
  const expand = () => navigate(withQuery(`${projectPath(entity, project)}/table`, Object.fromEntries(query.entries())));
  return (
    <aside class="sidebar" aria-label="Runs">
      <div class="sidebar-head">
        <h2>Runs</h2>
        <span class="run-count" data-testid="run-count">
          {total} run{total === 1 ? "" : "s"} ({visualized.size} visualized)
        </span>
        <button type="button" class="btn-icon sidebar-expand" aria-label="Expand the runs table" title="Expand into the full runs table" onClick={expand}>
          <span aria-hidden="true">⤢</span>
        </button>
      </div>
      <div class="sidebar-options">
        <label class="control">
          <span>Visualize</span>
          <select class="input input-sm" value={String(show)} onChange={(event) => setQuery({ show: (event.target as HTMLSelectElement).value === "10" ? null : (event.target as HTMLSelectElement).value })}>
            {[5, 10, 20, 50, 100].map((n) => (
              <option key={n} value={n}>
                first {n}
              </option>
            ))}
          </select>
        </label>
        <label class="control">
          <span>Group by</span>
          <select class="input input-sm" value={groupBy} onChange={(event) => setQuery({ group: (event.target as HTMLSelectElement).value || null }, false)}>
            <option value="">none</option>
            {configColumns.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
            {groupBy && !configColumns.includes(groupBy) && <option value={groupBy}>{groupBy}</option>}
          </select>
        </label>
        <label class="control">
          <span>Truncate</span>
          <select
            class="input input-sm"
            value={trunc}
            title="Where long run names are shortened (the full name shows on hover)"
            onChange={(event) => {
              const mode = (event.target as HTMLSelectElement).value as TruncMode;
              saveTruncMode(entity, project, mode);
              setQuery({ trunc: mode === "middle" ? null : mode });
            }}
          >
            <option value="middle">middle</option>
            <option value="end">end</option>
            <option value="start">beginning</option>
          </select>
        </label>
      </div>
      <ul class="run-list">
        {(groups ?? [{ name: "", runs }]).flatMap((group) => [
          ...(groups
            ? [
                <li key={`group:${group.name}`} class="group-row" data-group={group.name}>
                  <span class="swatch" style={{ background: groupColors.get(group.name) }} aria-hidden="true" />
                  <span class="group-name" title={`${groupBy}: ${group.name}`}>
                    {groupBy}: {group.name}
                  </span>
                  <span class="muted">
                    {group.runs.length} run{group.runs.length === 1 ? "" : "s"}
                  </span>
                </li>,
              ]
            : []),
          ...group.runs.map((run) => {
          const isHidden = hidden.has(run.run_id);
          const color = colors.get(run.run_id) ?? presets.get(run.run_id) ?? presetColor(run.run_id);
          return (
            <li key={run.run_id} class={`run-row${isHidden ? " is-hidden" : ""}${visualized.has(run.run_id) ? " is-visual" : ""}`} data-run-id={run.run_id}>
              <button
                type="button"
                class="btn-icon eye"
                aria-pressed={!isHidden}
                aria-label={`${isHidden ? "Show" : "Hide"} ${run.name} in charts`}
                title={isHidden ? "Show in charts" : "Hide from charts"}
                onClick={() => toggle(run.run_id)}
              >
                <span aria-hidden="true">{isHidden ? "◌" : "◉"}</span>
              </button>
              <ColorPicker color={color} label={run.name} onChange={(hex) => recolor(run.run_id, hex)} />
              <StateBadge state={run.state} compact />
              <a class="run-name" href={runPath(entity, project, run.run_id)} title={run.name}>
                {truncateName(run.name, SIDEBAR_NAME_CHARS, trunc)}
              </a>
              <Menu
                label={`Actions for ${run.name}`}
                items={runMenuItems(run, { onChanged, onDeleted: onChanged, projects })}
              />
              {pinnedColumns.length > 0 && (
                <span class="selector-values">
                  {pinnedColumns.map((id) => {
                    const text = columnText(run, id);
                    return (
                      <span key={id} class="selector-pair" title={`${columnLabel(id)}: ${text}`}>
                        <span class="selector-label">{columnLabel(id).replace(/^(config|summary)\./, "")}</span>
                        <span class="selector-cell" data-column={id}>
                          {text}
                        </span>
                      </span>
                    );
                  })}
                </span>
              )}
            </li>
          );
          }),
        ])}
      </ul>
      {runs.length < total && (
        <button type="button" class="btn btn-block" onClick={onMore}>
          Show more runs ({total - runs.length} more)
        </button>
      )}
      {total === 0 && <p class="muted pad">No runs match.</p>}
    </aside>
  );
}

function Workspace({ entity, project, projects, detail }: { entity: string; project: string; projects: string[]; detail?: ProjectDetail }) {
  const { query } = useLocation();
  const runQuery = runQueryFrom(query);
  const show = Math.max(1, Math.min(500, Number(query.get("show") ?? "10") || 10));
  const [pageSize, setPageSize] = useState(50);
  const limit = Math.max(pageSize, show);
  const hidden = useMemo(() => new Set((query.get("hide") ?? "").split(",").filter(Boolean)), [query.get("hide")]);
  const colors = useMemo(() => parseColors(query.get("color")), [query.get("color")]);
  const trunc = loadTruncMode(entity, project, query.get("trunc"));
  const settings = readChartSettings(query);
  const closed = readClosed(query, ["System"]);
  const groupBy = query.get("group") ?? "";

  const list = useAsync(
    () => api.runs(entity, project, { ...runQuery, limit }),
    [entity, project, runQuery.search, runQuery.states?.join(), runQuery.filters, runQuery.order, limit],
  );
  const runs = list.data?.runs ?? [];
  const anyRunning = runs.some((r) => r.state === "running");
  usePoll(list.reload, anyRunning ? 2500 : 8000, true);

  // One colour per run in every view (lib/colors.ts): the charted runs are given theirs first, so
  // they are distinct; then the rest of the list.
  const presets = useMemo(() => {
    const scope = `${entity}/${project}`;
    runColors(scope, runs.filter((r) => !hidden.has(r.run_id)).slice(0, show), colors);
    return runColors(scope, runs, colors);
  }, [entity, project, runs, hidden, show, colors]);
  const visual: VisualRun[] = useMemo(
    () =>
      runs
        .filter((r) => !hidden.has(r.run_id))
        .slice(0, show)
        .map((r) => ({
          runId: r.run_id,
          incarnation: r.incarnation_id,
          label: r.name,
          color: colors.get(r.run_id) ?? presets.get(r.run_id) ?? presetColor(r.run_id),
          version: `${r.last_step}:${r.state}`,
          live: r.state === "running",
        })),
    [runs, hidden, show, colors, presets],
  );
  const systemVisual = useMemo(
    () => visual.map((v) => {
      const run = runs.find((r) => r.run_id === v.runId);
      return { ...v, version: `${run ? Math.floor(run.heartbeat_at) : 0}:${run?.state ?? ""}` };
    }),
    [visual, runs],
  );
  // Grouped: every shown run is charted through its group (the first `show` groups).
  const groups = useMemo(() => (groupBy ? groupRuns(runs, groupBy) : null), [runs, groupBy]);
  const groupColors = useMemo(() => paletteForGroups((groups ?? []).map((g) => `group:${g.name}`)), [groups]);
  const visualGroups: VisualGroup[] | null = useMemo(
    () =>
      groups
        ? groups
            .map((g) => ({ ...g, runs: g.runs.filter((r) => !hidden.has(r.run_id)) }))
            .filter((g) => g.runs.length > 0)
            .slice(0, show)
            .map((g) => ({
              name: g.name,
              label: `${groupBy}: ${g.name} (${g.runs.length})`,
              color: groupColors.get(`group:${g.name}`) ?? presetColor(g.name),
              incarnations: g.runs.map((r) => r.incarnation_id),
              version: g.runs.map((r) => `${r.last_step}:${r.state}`).join(","),
            }))
        : null,
    [groups, hidden, show, groupBy, groupColors],
  );
  const visualIds = useMemo(() => {
    if (!visualGroups || !groups) return new Set(visual.map((v) => v.runId));
    const charted = new Set(visualGroups.flatMap((g) => g.incarnations));
    return new Set(runs.filter((r) => charted.has(r.incarnation_id)).map((r) => r.run_id));
  }, [visual, visualGroups, groups, runs]);
  const incs = visualGroups ? visualGroups.flatMap((g) => g.incarnations).slice(0, 500) : visual.map((v) => v.incarnation);
  const versionKey = visualGroups
    ? visualGroups.map((g) => `${g.name}@${g.version}`).join(",")
    : visual.map((v) => `${v.incarnation}@${v.version}`).join(",");
  const keys = useAsync(() => (incs.length ? api.keys(incs, 0) : Promise.resolve({ stream: 0, keys: {} as Record<string, KeyInfo> })), [versionKey]);
  const systemOpen = !closed.has("System");
  const systemKeys = useAsync(
    () => (incs.length && systemOpen ? api.keys(incs, 1) : Promise.resolve({ stream: 1, keys: {} as Record<string, KeyInfo> })),
    [systemOpen ? systemVisual.map((v) => `${v.incarnation}@${v.version}`).join(",") : "closed"],
  );
  const systemX = settings.x === "_timestamp" ? "_timestamp" : "_runtime";

  return (
    <div class="workspace">
      <RunsSidebar
        entity={entity}
        project={project}
        runs={runs}
        total={list.data?.total ?? 0}
        visualized={visualIds}
        hidden={hidden}
        colors={colors}
        presets={presets}
        show={show}
        trunc={trunc}
        onChanged={list.reload}
        onMore={() => setPageSize((n) => n + 100)}
        projects={projects}
        configColumns={detail?.columns.config ?? []}
        groupBy={groupBy}
        groups={groups}
        groupColors={new Map([...groupColors].map(([k, v]) => [k.slice(6), v]))}
      />
      <div class="panels" aria-label="Charts">
        {list.error !== undefined && <p class="error-text">Could not load runs: {errorText(list.error)}</p>}
        <LiveBadge live={runs.some((r) => r.state === "running" && visualIds.has(r.run_id))} />
        <ChartControls
          x={settings.x}
          smoothing={settings.smoothing}
          logScale={settings.logScale}
          panelSearch={settings.panelSearch}
          metricKeys={Object.entries(keys.data?.keys ?? {}).filter(([, info]) => info.numeric).map(([k]) => k)}
        />
        {visualGroups && (
          <p class="group-note" data-testid="group-note">
            Grouped by <strong>{groupBy}</strong>: each chart shows every group's mean as a line and its min–max as a shaded
            band, computed on the runs' aligned steps.
          </p>
        )}
        {visual.length === 0 && list.data ? (
          <p class="empty">{runs.length ? "Every run is hidden: turn one on with its eye button." : "No runs to chart."}</p>
        ) : (
          <EditableWorkspace
            entity={entity}
            project={project}
            view="project"
            keys={keys.data?.keys ?? {}}
            runs={visual}
            groups={visualGroups}
            stream={0}
            settings={visualGroups ? { ...settings, x: "_step" } : settings}
            sectionOf={sectionOf}
            closed={closed}
            onToggle={(s) => toggleClosed(closed, s)}
            search={settings.panelSearch}
            syncKey={`${entity}/${project}:${visualGroups ? "_step" : settings.x}`}
          />
        )}
        {visual.length > 0 && (
          <section class="section" aria-labelledby="section-system">
            <h3 class="section-head">
              <button type="button" id="section-system" class="section-toggle" aria-expanded={systemOpen} onClick={() => toggleClosed(closed, "System")}>
                <span class="chevron" aria-hidden="true">{systemOpen ? "▾" : "▸"}</span>
                System
              </button>
            </h3>
            {systemOpen &&
              (systemKeys.data && Object.keys(systemKeys.data.keys).length === 0 ? (
                <p class="empty">No system metrics were recorded for these runs.</p>
              ) : (
                <PanelGrid
                  keys={systemKeys.data?.keys ?? {}}
                  runs={systemVisual}
                  stream={1}
                  settings={{ ...settings, x: systemX }}
                  sectionOf={() => "System metrics"}
                  closed={new Set()}
                  onToggle={() => undefined}
                  search={settings.panelSearch}
                  syncKey={`${entity}/${project}:system:${systemX}`}
                />
              ))}
          </section>
        )}
      </div>
    </div>
  );
}

export function ProjectPage({ entity, project, tab }: { entity: string; project: string; tab: "workspace" | "table" }) {
  const detail = useAsync(() => api.project(entity, project), [entity, project]);
  usePoll(detail.reload, 15000, true);
  const projects = useAsync(() => api.projects(), [entity]);
  const names = (projects.data?.projects ?? []).filter((p) => p.entity === entity).map((p) => p.name);
  return (
    <div class="page page-project">
      <header class="page-head">
        <nav class="crumbs" aria-label="Breadcrumb">
          <a href="/">Projects</a>
          <span aria-hidden="true">/</span>
          <span>{entity}</span>
          <span aria-hidden="true">/</span>
          <h1>{project}</h1>
        </nav>
      </header>
      {detail.error !== undefined && !detail.data ? (
        <p class="error-text">{errorText(detail.error)}</p>
      ) : (
        <>
          <Toolbar entity={entity} project={project} tab={tab} detail={detail.data} />
          {tab === "workspace" ? (
            <Workspace entity={entity} project={project} projects={names} detail={detail.data} />
          ) : (
            <RunsTable entity={entity} project={project} detail={detail.data} projects={names} onChanged={detail.reload} />
          )}
        </>
      )}
    </div>
  );
}
