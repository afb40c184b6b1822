// The runs table: every run of the project with server-side filter, sort and paging, virtualised
// rows (only those on screen exist in the DOM), keyboard navigation, selection and bulk delete.
import type { JSX } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, errorText, type ProjectDetail, type RunItem } from "../api";
import { comparePath } from "../lib/compare";
import { lookup } from "../lib/flatten";
import { formatDate, formatDuration, formatValue, truncateName } from "../lib/format";
import { usePoll } from "../lib/hooks";
import { type ColumnLayout, loadHidden, loadLayout, loadTruncMode, runtimeSeconds, saveHidden, saveLayout } from "../lib/runColumns";
import { navigate, setQuery, useLocation, withQuery } from "../router";
import { projectPath, runPath, runQueryFrom } from "../paths";
import { confirmDialog, promptDialog } from "./Dialog";
import { GroupedRuns } from "./GroupedRuns";
import { StateBadge } from "./StateBadge";
import { toast } from "./Toast";

export type { ColumnLayout } from "../lib/runColumns";

const ROW = 36;
const PAGE = 100;
const OVERSCAN = 8;
/** Characters of a run name the Name column shows before truncating it. */
const NAME_CHARS = 28;

interface Column {
  id: string;
  label: string;
  group?: "config" | "summary";
  width: number;
  sortKey?: string;
  sticky?: number;
  render: (run: RunItem) => JSX.Element | string;
  /** The raw value, for grouping and histograms. */
  value?: (run: RunItem) => unknown;
  /** How a group's numeric range is written (durations as "1m 20s"). */
  format?: (value: number) => string;
  /** The server's filter field, to show one group's runs. */
  filterField?: string;
}

function fullLabel(column: Column): string {
  return column.group ? `${column.group}.${column.label}` : column.label;
}

/** Columns in the remembered order: name first, then pinned ones, then the rest. */
export function arrange(columns: Column[], layout: ColumnLayout): Column[] {
  const rank = new Map(layout.order.map((id, index) => [id, index]));
  const natural = new Map(columns.map((c, index) => [c.id, index]));
  const sorted = [...columns].sort((a, b) => {
    const ra = rank.get(a.id);
    const rb = rank.get(b.id);
    if (ra !== undefined && rb !== undefined) return ra - rb;
    if (ra !== undefined) return -1;
    if (rb !== undefined) return 1;
    return (natural.get(a.id) ?? 0) - (natural.get(b.id) ?? 0);
  });
  const pinned = new Set(layout.pinned);
  const name = sorted.filter((c) => c.id === "name");
  return [...name, ...sorted.filter((c) => c.id !== "name" && pinned.has(c.id)), ...sorted.filter((c) => c.id !== "name" && !pinned.has(c.id))];
}

function ColumnsMenu({
  columns,
  hidden,
  pinned,
  onChange,
  onTogglePin,
}: {
  columns: Column[];
  hidden: Set<string>;
  pinned: Set<string>;
  onChange: (hidden: Set<string>) => void;
  onTogglePin: (id: string) => void;
}) {
  const [open, setOpen] = useState(false);
  const [search, setSearch] = useState("");
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return undefined;
    const onDown = (event: MouseEvent) => {
      if (!box.current?.contains(event.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", onDown);
    return () => document.removeEventListener("mousedown", onDown);
  }, [open]);
  const shown = columns.filter((c) => fullLabel(c).toLowerCase().includes(search.toLowerCase()));
  return (
    <div class="menu-wrap" ref={box}>
      <button type="button" class="btn" aria-haspopup="dialog" aria-expanded={open} onClick={() => setOpen(!open)}>
        Columns ({columns.length - hidden.size}/{columns.length})
      </button>
      {open && (
        <div
          class="menu menu-right columns-popup"
          role="dialog"
          aria-label="Show or hide columns"
          onKeyDown={(event) => event.key === "Escape" && setOpen(false)}
        >
          <input type="search" class="input input-sm" placeholder="Find a column…" aria-label="Find a column" value={search} onInput={(event) => setSearch((event.target as HTMLInputElement).value)} autoFocus />
          <div class="columns-actions">
            <button type="button" class="btn btn-xs" onClick={() => onChange(new Set())}>
              Show all
            </button>
            <button type="button" class="btn btn-xs" onClick={() => onChange(new Set(columns.filter((c) => c.id.includes(":")).map((c) => c.id)))}>
              Hide config & summary
            </button>
          </div>
          <ul class="columns-list">
            {shown.map((column) => {
              const isPinned = column.id === "name" || pinned.has(column.id);
              return (
                <li key={column.id} class="columns-item">
                  <label class="control-check">
                    <input
                      type="checkbox"
                      checked={!hidden.has(column.id)}
                      onChange={(event) => {
                        const next = new Set(hidden);
                        if ((event.target as HTMLInputElement).checked) next.delete(column.id);
                        else next.add(column.id);
                        onChange(next);
                      }}
                    />
                    <span>
                      {column.group ? <span class="head-prefix">{column.group}</span> : null}
                      {column.label}
                    </span>
                  </label>
                  {column.id !== "name" && (
                    <button
                      type="button"
                      class={`pin-button${isPinned ? " pinned" : ""}`}
                      aria-pressed={isPinned}
                      aria-label={`${isPinned ? "Unpin" : "Pin"} ${fullLabel(column)}`}
                      title={isPinned ? "Unpin: scrolls with the other columns" : "Pin: stays beside the name, and shows in the workspace's run list"}
                      onClick={() => onTogglePin(column.id)}
                    >
                      <PinIcon filled={isPinned} />
                    </button>
                  )}
                </li>
              );
            })}
          </ul>
        </div>
      )}
    </div>
  );
}

function PinIcon({ filled }: { filled: boolean }) {
  return (
    <svg viewBox="0 0 16 16" width="12" height="12" aria-hidden="true">
      <path
        d="M5 1.5h6l-1 4 2.5 3v1h-4v5l-.5 1-.5-1v-5h-4v-1L6 5.5z"
        fill={filled ? "currentColor" : "none"}
        stroke="currentColor"
        stroke-width="1.2"
        stroke-linejoin="round"
      />
    </svg>
  );
}

interface OpenColumnMenu {
  column: Column;
  left: number;
  top: number;
}

/** A column header's "…" menu (sort, pin, hide), placed in the viewport under its button so the
 * grid's clipping cannot cut it. */
function ColumnMenu({ open, items, onClose }: { open: OpenColumnMenu; items: { label: string; onSelect: () => void }[]; onClose: (refocus: boolean) => void }) {
  const menu = useRef<HTMLDivElement>(null);
  const label = `Column menu for ${fullLabel(open.column)}`;
  useLayoutEffect(() => {
    menu.current?.querySelector<HTMLButtonElement>("[role=menuitem]")?.focus();
  }, [open.column.id]);
  useEffect(() => {
    const onDown = (event: MouseEvent) => {
      const target = event.target as Element;
      if (!menu.current?.contains(target) && !target.closest?.(".column-menu-button")) onClose(false);
    };
    const onScroll = () => onClose(false);
    document.addEventListener("mousedown", onDown);
    window.addEventListener("resize", onScroll);
    return () => {
      document.removeEventListener("mousedown", onDown);
      window.removeEventListener("resize", onScroll);
    };
  }, [onClose]);
  const onKeyDown = (event: KeyboardEvent) => {
    const entries = [...(menu.current?.querySelectorAll<HTMLButtonElement>("[role=menuitem]") ?? [])];
    const index = entries.indexOf(document.activeElement as HTMLButtonElement);
    const focus = (i: number) => entries[(i + entries.length) % entries.length]?.focus();
    if (event.key === "ArrowDown") focus(index + 1);
    else if (event.key === "ArrowUp") focus(index - 1);
    else if (event.key === "Home") focus(0);
    else if (event.key === "End") focus(-1);
    else if (event.key === "Escape") onClose(true);
    else if (event.key === "Tab") onClose(false);
    else return;
    event.preventDefault();
    event.stopPropagation();
  };
  return (
    <div ref={menu} class="menu column-menu" role="menu" aria-label={label} style={{ left: `${open.left}px`, top: `${open.top}px` }} onKeyDown={onKeyDown}>
      {items.map((item) => (
        <button
          key={item.label}
          type="button"
          role="menuitem"
          onClick={() => {
            onClose(true);
            item.onSelect();
          }}
        >
          {item.label}
        </button>
      ))}
    </div>
  );
}

export function RunsTable({
  entity,
  project,
  detail,
  projects,
  onChanged,
}: {
  entity: string;
  project: string;
  detail?: ProjectDetail;
  projects: string[];
  onChanged: () => void;
}) {
  const { query } = useLocation();
  const runQuery = runQueryFrom(query);
  const queryKey = JSON.stringify(runQuery);
  const [total, setTotal] = useState<number | null>(null);
  const [pages, setPages] = useState<Map<number, RunItem[]>>(new Map());
  const [error, setError] = useState<string | null>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  const [focused, setFocused] = useState(0);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [hidden, setHidden] = useState<Set<string>>(() => loadHidden(entity, project));
  const [layout, setLayoutState] = useState<ColumnLayout>(() => loadLayout(entity, project, query.get("pin")));
  const [dragging, setDragging] = useState<string | null>(null);
  const [menuFor, setMenuFor] = useState<OpenColumnMenu | null>(null);
  const trunc = loadTruncMode(entity, project, query.get("trunc"));
  const setLayout = (next: ColumnLayout) => {
    setLayoutState(next);
    saveLayout(entity, project, next);
    setQuery({ pin: next.pinned.length ? next.pinned.join(",") : null }, false);
  };
  const generation = useRef(0);
  const inflight = useRef(new Set<number>());
  const scroller = useRef<HTMLDivElement>(null);

  const fetchPage = (page: number, gen: number) => {
    if (inflight.current.has(page)) return;
    inflight.current.add(page);
    api.runs(entity, project, { ...runQuery, limit: PAGE, offset: page * PAGE }).then(
      (result) => {
        inflight.current.delete(page);
        if (gen !== generation.current) return;
        setError(null);
        setTotal(result.total);
        setPages((old) => new Map(old).set(page, result.runs));
      },
      (err: unknown) => {
        inflight.current.delete(page);
        if (gen === generation.current) setError(errorText(err));
      },
    );
  };

  useEffect(() => {
    generation.current += 1;
    inflight.current.clear();
    setPages(new Map());
    setTotal(null);
    setSelected(new Set());
    setFocused(0);
    if (scroller.current) scroller.current.scrollTop = 0;
    setScrollTop(0);
    fetchPage(0, generation.current);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [entity, project, queryKey]);

  useEffect(() => {
    const element = scroller.current;
    if (!element) return undefined;
    const observer = new ResizeObserver(() => setViewport(element.clientHeight));
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  const count = total ?? 0;
  const first = Math.max(0, Math.floor(scrollTop / ROW) - OVERSCAN);
  const last = Math.min(count - 1, Math.ceil((scrollTop + viewport) / ROW) + OVERSCAN);

  useEffect(() => {
    if (total === null) return;
    for (let page = Math.floor(first / PAGE); page <= Math.floor(Math.max(first, last) / PAGE); page += 1) {
      if (!pages.has(page) && page * PAGE < count) fetchPage(page, generation.current);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [first, last, total, pages]);

  const refreshVisible = () => {
    const gen = generation.current;
    const visiblePages = new Set<number>();
    for (let i = first; i <= last; i += PAGE) visiblePages.add(Math.floor(i / PAGE));
    visiblePages.add(Math.floor(Math.max(first, last) / PAGE));
    if (!visiblePages.size) visiblePages.add(0);
    for (const page of visiblePages) fetchPage(page, gen);
  };
  const loadedRuns = useMemo(() => [...pages.values()].flat(), [pages]);
  const anyRunning = loadedRuns.some((r) => r.state === "running");
  usePoll(refreshVisible, anyRunning ? 3000 : 10000, true);

  const afterChange = () => {
    refreshVisible();
    onChanged();
  };

  const editTags = async (run: RunItem, tags: string[]) => {
    try {
      await api.patch(run.entity, run.project, run.run_id, { tags });
      afterChange();
    } catch (err) {
      toast(errorText(err), "error");
    }
  };

  const columns: Column[] = useMemo(() => {
    const base: Column[] = [
      {
        id: "name",
        label: "Name",
        width: 220,
        sortKey: "display_name",
        sticky: 40,
        render: (run) => (
          <a href={runPath(entity, project, run.run_id)} class="run-name" tabIndex={-1} title={run.name}>
            {truncateName(run.name, NAME_CHARS, trunc)}
          </a>
        ),
      },
      { id: "state", label: "State", width: 110, sortKey: "state", render: (run) => <StateBadge state={run.state} />, value: (run) => run.state, filterField: "state" },
      { id: "created", label: "Created", width: 170, sortKey: "created_at", render: (run) => formatDate(run.created_at), value: (run) => run.created_at },
      {
        id: "runtime",
        label: "Runtime",
        width: 124,
        sortKey: "runtime",
        render: (run) => formatDuration(runtimeSeconds(run)),
        value: (run) => runtimeSeconds(run),
        format: formatDuration,
      },
      {
        id: "notes",
        label: "Notes",
        width: 200,
        sortKey: "notes",
        render: (run) => (
          <span class="notes-cell">
            <span class="notes-text" title={run.notes || undefined}>
              {run.notes ? run.notes.split("\n")[0] : <span class="muted">–</span>}
            </span>
            <button
              type="button"
              class="notes-edit"
              tabIndex={-1}
              aria-label={`Edit the notes of ${run.name}`}
              title="Edit notes"
              onClick={async () => {
                const notes = await promptDialog({ title: `Notes of ${run.name}`, label: "Notes", initial: run.notes, confirmLabel: "Save" });
                if (notes === null || notes === run.notes) return;
                try {
                  await api.patch(run.entity, run.project, run.run_id, { notes });
                  afterChange();
                } catch (err) {
                  toast(errorText(err), "error");
                }
              }}
            >
              <span aria-hidden="true">✎</span>
            </button>
          </span>
        ),
        value: (run) => run.notes || null,
        filterField: "notes",
      },
      {
        id: "tags",
        label: "Tags",
        width: 200,
        render: (run) => (
          <span class="tags">
            {run.tags.map((tag) => (
              <span class="tag" key={tag}>
                {tag}
                <button type="button" class="tag-remove" tabIndex={-1} aria-label={`Remove tag ${tag} from ${run.name}`} onClick={() => editTags(run, run.tags.filter((t) => t !== tag))}>
                  ×
                </button>
              </span>
            ))}
            <button
              type="button"
              class="tag-add"
              tabIndex={-1}
              aria-label={`Add a tag to ${run.name}`}
              onClick={async () => {
                const tag = await promptDialog({ title: `Add a tag to ${run.name}`, label: "Tag", confirmLabel: "Add" });
                if (tag && !run.tags.includes(tag)) editTags(run, [...run.tags, tag]);
              }}
            >
              +
            </button>
          </span>
        ),
      },
      { id: "group", label: "Group", width: 120, render: (run) => run.group || "–", value: (run) => run.group || null, filterField: "group" },
      { id: "job_type", label: "Job type", width: 110, render: (run) => run.job_type || "–", value: (run) => run.job_type || null, filterField: "jobType" },
    ];
    const config = (detail?.columns.config ?? []).map(
      (key): Column => ({
        id: `config:${key}`,
        label: key,
        group: "config",
        width: 140,
        sortKey: `config.${key}`,
        render: (run) => formatValue(lookup(run.config, key)),
        value: (run) => lookup(run.config, key),
        filterField: `config.${key}`,
      }),
    );
    const summary = (detail?.columns.summary ?? []).map(
      (key): Column => ({
        id: `summary:${key}`,
        label: key,
        group: "summary",
        width: 140,
        sortKey: `summary_metrics.${key}`,
        render: (run) => formatValue(lookup(run.summary, key)),
        value: (run) => lookup(run.summary, key),
        filterField: `summary_metrics.${key}`,
      }),
    );
    return [...base, ...config, ...summary];
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [detail, entity, project, trunc]);

  const groupBy = query.get("tgroup") ? columns.find((c) => c.id === query.get("tgroup")) : undefined;
  const pinnedIds = new Set(layout.pinned);
  const arranged = arrange(columns, layout);
  const visibleColumns = arranged
    .filter((c) => !hidden.has(c.id))
    .map((c) => (c.id === "name" || pinnedIds.has(c.id) ? { ...c, sticky: 0 } : { ...c, sticky: undefined }));
  let offset = 40;
  for (const column of visibleColumns) {
    if (column.sticky === undefined) break;
    column.sticky = offset;
    offset += column.width;
  }
  const width = 40 + visibleColumns.reduce((sum, c) => sum + c.width, 0);

  const togglePin = (id: string) => {
    const pinned = pinnedIds.has(id) ? layout.pinned.filter((p) => p !== id) : [...layout.pinned, id];
    setLayout({ order: arranged.map((c) => c.id), pinned });
  };
  /** Move a column before `target` (or by `step` places), keeping every other column's place. */
  const moveColumn = (id: string, target: string | null, step = 0) => {
    const ids = arranged.map((c) => c.id).filter((c) => c !== "name");
    const from = ids.indexOf(id);
    if (from < 0 || id === target) return;
    ids.splice(from, 1);
    let to = target === null ? from + step : ids.indexOf(target);
    if (target !== null && step > 0) to += 1;
    to = Math.max(0, Math.min(ids.length, to));
    ids.splice(to, 0, id);
    // A column dropped on a pinned one becomes pinned, and on an unpinned one unpinned.
    let nextPinned = layout.pinned;
    if (target !== null) {
      const targetPinned = pinnedIds.has(target);
      if (targetPinned && !pinnedIds.has(id)) nextPinned = [...layout.pinned, id];
      else if (!targetPinned && pinnedIds.has(id)) nextPinned = layout.pinned.filter((p) => p !== id);
    }
    setLayout({ order: ["name", ...ids], pinned: nextPinned });
  };
  const order = runQuery.order ?? "-created_at";

  /** Sort by `key` in the given direction (the column menu's Sort Asc / Sort Desc). */
  const sortDirected = (key: string, direction: "+" | "-") => setQuery({ sort: `${direction}${key}` === "-created_at" ? null : `${direction}${key}` }, false);
  const hideColumn = (id: string) => {
    const next = new Set(hidden);
    next.add(id);
    changeHidden(next);
  };
  const changeHidden = (next: Set<string>) => {
    setHidden(next);
    saveHidden(entity, project, next);
  };
  const menuItems = (column: Column) => [
    ...(column.sortKey
      ? [
          { label: "Sort Asc", onSelect: () => sortDirected(column.sortKey ?? "", "+") },
          { label: "Sort Desc", onSelect: () => sortDirected(column.sortKey ?? "", "-") },
        ]
      : []),
    ...(column.id === "name"
      ? []
      : [
          { label: pinnedIds.has(column.id) ? "Unpin column" : "Pin column", onSelect: () => togglePin(column.id) },
          { label: "Hide column", onSelect: () => hideColumn(column.id) },
        ]),
  ];

  const sortBy = (key: string) => {
    let next: string | null = `-${key}`;
    if (order === `-${key}`) next = `+${key}`;
    else if (order === `+${key}` || order === key) next = null;
    setQuery({ sort: next }, false);
  };

  const runAt = (index: number): RunItem | undefined => pages.get(Math.floor(index / PAGE))?.[index % PAGE];

  const moveFocus = (index: number) => {
    const clamped = Math.max(0, Math.min(count - 1, index));
    setFocused(clamped);
    const element = scroller.current;
    if (!element) return;
    const top = clamped * ROW;
    const headerHeight = ROW;
    if (top < element.scrollTop) element.scrollTop = top;
    else if (top + ROW > element.scrollTop + element.clientHeight - headerHeight) element.scrollTop = top + ROW - element.clientHeight + headerHeight;
  };

  const onKeyDown = (event: KeyboardEvent) => {
    if ((event.target as HTMLElement).closest("input, button:not(.grid-focus), a.run-name") && event.target !== scroller.current) {
      if (!["ArrowDown", "ArrowUp"].includes(event.key)) return;
    }
    const pageRows = Math.max(1, Math.floor(viewport / ROW) - 1);
    if (event.key === "ArrowDown") moveFocus(focused + 1);
    else if (event.key === "ArrowUp") moveFocus(focused - 1);
    else if (event.key === "PageDown") moveFocus(focused + pageRows);
    else if (event.key === "PageUp") moveFocus(focused - pageRows);
    else if (event.key === "Home") moveFocus(0);
    else if (event.key === "End") moveFocus(count - 1);
    else if (event.key === "Enter") {
      const run = runAt(focused);
      if (run) navigate(runPath(entity, project, run.run_id));
    } else if (event.key === " ") {
      const run = runAt(focused);
      if (run) toggleSelect(run.run_id);
    } else return;
    event.preventDefault();
  };

  const toggleSelect = (runId: string) => {
    setSelected((old) => {
      const next = new Set(old);
      if (next.has(runId)) next.delete(runId);
      else next.add(runId);
      return next;
    });
  };

  const deleteSelected = async () => {
    const ids = [...selected];
    const ok = await confirmDialog({
      title: `Delete ${ids.length} run${ids.length === 1 ? "" : "s"}?`,
      message: `The selected runs and their history, logs and files will be deleted. Forks keep the history they inherited. This cannot be undone.`,
      confirmLabel: `Delete ${ids.length} run${ids.length === 1 ? "" : "s"}`,
      danger: true,
    });
    if (!ok) return;
    let failed = 0;
    for (const id of ids) {
      try {
        await api.remove(entity, project, id);
      } catch (err) {
        failed += 1;
        toast(errorText(err), "error");
      }
    }
    toast(`Deleted ${ids.length - failed} run${ids.length - failed === 1 ? "" : "s"}`);
    setSelected(new Set());
    generation.current += 1;
    setPages(new Map());
    fetchPage(0, generation.current);
    onChanged();
  };

  const allLoadedSelected = loadedRuns.length > 0 && loadedRuns.every((r) => selected.has(r.run_id));
  const rows: JSX.Element[] = [];
  for (let i = first; i <= last && count > 0; i += 1) {
    const run = runAt(i);
    const style = { top: `${i * ROW}px`, width: `${width}px` };
    if (!run) {
      rows.push(<div key={`s${i}`} class="grid-row skeleton" role="row" aria-rowindex={i + 2} style={style} />);
      continue;
    }
    rows.push(
      <div
        key={run.run_id}
        class={`grid-row${i === focused ? " focused" : ""}${selected.has(run.run_id) ? " selected" : ""}`}
        role="row"
        aria-rowindex={i + 2}
        aria-selected={selected.has(run.run_id)}
        data-run-id={run.run_id}
        style={style}
        onClick={() => setFocused(i)}
      >
        <div class="grid-cell sticky check" role="gridcell" style={{ width: "40px", left: "0px" }}>
          <input type="checkbox" tabIndex={-1} aria-label={`Select ${run.name}`} checked={selected.has(run.run_id)} onChange={() => toggleSelect(run.run_id)} />
        </div>
        {visibleColumns.map((column) => (
          <div
            key={column.id}
            class={`grid-cell${column.sticky !== undefined ? " sticky" : ""}`}
            role="gridcell"
            data-column={column.id}
            style={{ width: `${column.width}px`, left: column.sticky !== undefined ? `${column.sticky}px` : undefined }}
          >
            {column.render(run)}
          </div>
        ))}
      </div>,
    );
  }

  return (
    <div class="runs-table">
      <div class="table-bar">
        <span class="run-count" data-testid="table-count">
          {total === null ? "Loading…" : `${count} run${count === 1 ? "" : "s"}`}
        </span>
        {selected.size > 0 && (
          <div class="selection-bar" role="group" aria-label="Selected runs">
            <span>{selected.size} selected</span>
            {selected.size >= 2 && (
              <button type="button" class="btn btn-primary" onClick={() => navigate(comparePath(entity, project, [...selected]))}>
                Compare {selected.size} runs
              </button>
            )}
            <button type="button" class="btn btn-danger" onClick={deleteSelected}>
              Delete…
            </button>
            <button type="button" class="btn" onClick={() => setSelected(new Set())}>
              Clear selection
            </button>
          </div>
        )}
        <div class="spacer" />
        <label class="control">
          <span>Group rows by</span>
          <select class="input input-sm" value={groupBy?.id ?? ""} onChange={(event) => setQuery({ tgroup: (event.target as HTMLSelectElement).value || null }, false)}>
            <option value="">none</option>
            {columns
              .filter((c) => c.value && c.id !== "created" && c.id !== "runtime")
              .map((c) => (
                <option key={c.id} value={c.id}>
                  {c.group ? `${c.group}.` : ""}
                  {c.label}
                </option>
              ))}
          </select>
        </label>
        <a
          class="btn"
          href={withQuery(projectPath(entity, project), Object.fromEntries(query.entries()))}
          aria-label="Collapse the runs table into the sidebar"
          title="Back to the workspace, the runs as a sidebar beside the charts"
        >
          <span aria-hidden="true">⤡ </span>Workspace
        </a>
        <ColumnsMenu columns={columns} hidden={hidden} pinned={pinnedIds} onChange={changeHidden} onTogglePin={togglePin} />
      </div>
      {error && <p class="error-text" role="alert">{error}</p>}
      {menuFor && (
        <ColumnMenu
          open={menuFor}
          items={menuItems(menuFor.column)}
          onClose={(refocus) => {
            const id = menuFor.column.id;
            setMenuFor(null);
            if (refocus) document.querySelector<HTMLElement>(`.grid-header [data-column="${CSS.escape(id)}"] .column-menu-button`)?.focus();
          }}
        />
      )}
      {groupBy && <GroupedRuns entity={entity} project={project} runQuery={runQuery} by={groupBy} columns={visibleColumns} />}
      <div
        hidden={groupBy !== undefined}
        ref={scroller}
        class="grid"
        role="grid"
        aria-label={`Runs of ${project}`}
        aria-rowcount={count + 1}
        aria-colcount={visibleColumns.length + 1}
        tabIndex={0}
        onKeyDown={onKeyDown}
        onScroll={(event) => setScrollTop((event.target as HTMLDivElement).scrollTop)}
        // The column menu is placed in the viewport: a wheel that scrolls the grid under it closes it
        // (a scroll alone does not: bringing a header into view scrolls too).
        onWheel={() => menuFor && setMenuFor(null)}
      >
        <div class="grid-header" role="row" aria-rowindex={1} style={{ width: `${width}px` }}>
          <div class="grid-cell sticky check" role="columnheader" style={{ width: "40px", left: "0px" }}>
            <input
              type="checkbox"
              aria-label="Select all loaded runs"
              checked={allLoadedSelected}
              onChange={() => setSelected(allLoadedSelected ? new Set() : new Set(loadedRuns.map((r) => r.run_id)))}
            />
          </div>
          {visibleColumns.map((column) => {
            const active = column.sortKey && (order === `-${column.sortKey}` || order === `+${column.sortKey}` || order === column.sortKey);
            const ariaSort = !active ? "none" : order.startsWith("-") ? "descending" : "ascending";
            return (
              <div
                key={column.id}
                class={`grid-cell head${column.sticky !== undefined ? " sticky" : ""}${column.group ? ` ${column.group}` : ""}${dragging === column.id ? " dragging" : ""}`}
                title={column.group ? `${column.group}.${column.label}` : column.label}
                role="columnheader"
                aria-label={column.group ? `${column.group} ${column.label}` : column.label}
                data-column={column.id}
                aria-sort={column.sortKey ? ariaSort : undefined}
                style={{ width: `${column.width}px`, left: column.sticky !== undefined ? `${column.sticky}px` : undefined }}
                draggable={column.id !== "name"}
                onDragStart={(event) => {
                  if (column.id === "name") return;
                  event.dataTransfer?.setData("text/plain", column.id);
                  if (event.dataTransfer) event.dataTransfer.effectAllowed = "move";
                  setDragging(column.id);
                }}
                onDragEnd={() => setDragging(null)}
                onDragOver={(event) => {
                  if (column.id !== "name") event.preventDefault();
                }}
                onDrop={(event) => {
                  event.preventDefault();
                  const id = event.dataTransfer?.getData("text/plain") || dragging;
                  setDragging(null);
                  if (id && column.id !== "name") moveColumn(id, column.id);
                }}
                onKeyDown={(event) => {
                  if (!event.altKey || column.id === "name" || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) return;
                  event.preventDefault();
                  event.stopPropagation();
                  moveColumn(column.id, null, event.key === "ArrowLeft" ? -1 : 1);
                }}
              >
                {column.sortKey ? (
                  <button type="button" class="sort-button" title={`Sort by ${column.group ? `${column.group}.` : ""}${column.label}`} onClick={() => sortBy(column.sortKey ?? "")}>
                    {column.group && <span class="head-prefix">{column.group === "config" ? "cfg" : "sum"}</span>}
                    <span class="head-label">{column.label}</span>
                    <span aria-hidden="true" class="sort-mark">
                      {active ? (order.startsWith("-") ? "▼" : "▲") : ""}
                    </span>
                  </button>
                ) : (
                  <span class="head-label">{column.label}</span>
                )}
                <button
                  type="button"
                  class="column-menu-button"
                  aria-label={`Column menu for ${fullLabel(column)}`}
                  title="Sort, pin or hide"
                  aria-haspopup="menu"
                  aria-expanded={menuFor?.column.id === column.id}
                  onClick={(event) => {
                    if (menuFor?.column.id === column.id) {
                      setMenuFor(null);
                      return;
                    }
                    const box = (event.currentTarget as HTMLElement).getBoundingClientRect();
                    setMenuFor({ column, left: Math.max(4, Math.min(window.innerWidth - 180, box.right - 160)), top: box.bottom + 2 });
                  }}
                >
                  <span aria-hidden="true">…</span>
                </button>
                {column.id !== "name" && (
                  <button
                    type="button"
                    class={`pin-button${pinnedIds.has(column.id) ? " pinned" : ""}`}
                    aria-pressed={pinnedIds.has(column.id)}
                    aria-label={`${pinnedIds.has(column.id) ? "Unpin" : "Pin"} column ${column.group ? `${column.group}.` : ""}${column.label}`}
                    title={`${pinnedIds.has(column.id) ? "Unpin" : "Pin"} (drag a header to reorder; Alt+←/→ moves it)`}
                    onClick={() => togglePin(column.id)}
                  >
                    <span aria-hidden="true">{pinnedIds.has(column.id) ? "◆" : "◇"}</span>
                  </button>
                )}
              </div>
            );
          })}
        </div>
        <div class="grid-body" style={{ height: `${count * ROW}px`, width: `${width}px` }}>
          {rows}
        </div>
        {total === 0 && <p class="empty">No runs match these filters.</p>}
      </div>
      <p class="hint">
        Tip: focus the table and use ↑ ↓ PageUp PageDown Home End to move, Enter to open a run, Space to select. Sort by clicking a column header; its … menu sorts, pins and hides.
      </p>
      <datalist id="move-projects">
        {projects.map((p) => (
          <option key={p} value={p} />
        ))}
      </datalist>
    </div>
  );
}
