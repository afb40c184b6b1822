// A logged table: paged, sortable by any column, filterable; image cells as thumbnails.
import { useEffect, useMemo, useState } from "preact/hooks";
import { formatNumber } from "../../lib/format";
import { type Cell, cellText, type Descriptor, mediaFileUrl, type MediaRunValues, stepsUnion, tableView, valueAt } from "../../lib/media";
import { errorText } from "../../api";
import { ImageView, Lightbox } from "./ImageView";
import type { MediaRun } from "./MediaPanel";
import { loadTable, type TableBody } from "./mediaData";
import { StepSlider } from "./StepSlider";
import "./media.css";

const PAGE_SIZE = 10;

function CellView({ cell, resolve, onOpen }: { cell: Cell; resolve: (path: string) => string; onOpen: (image: Descriptor) => void }) {
  if (cell && typeof cell === "object" && typeof (cell as Descriptor)._type === "string") {
    const d = cell as Descriptor;
    const url = d.url ?? (d.path ? resolve(d.path) : undefined);
    if (d._type === "image-file" && url) {
      const image = { ...d, url };
      return (
        <span class="media-thumb">
          <ImageView image={image} onOpen={() => onOpen(image)} />
        </span>
      );
    }
    if (d._type === "audio-file" && url) return <audio controls preload="none" src={url} />;
    if (url) return <a href={url} target="_blank" rel="noopener">{d._type}</a>;
    return <span class="muted">{d._type}</span>;
  }
  if (typeof cell === "number") return <span class="num">{formatNumber(cell)}</span>;
  return <span>{cellText(cell)}</span>;
}

/** One table (the columns and rows of a `table-file`), with its own filter, sort and page; media
 *  cells' files are read from `resolve(path)`. */
export function TableView({ table, resolve, title }: { table: TableBody; resolve: (path: string) => string; title: string }) {
  const [filter, setFilter] = useState("");
  const [sort, setSort] = useState<{ column: number; descending: boolean } | null>(null);
  const [page, setPage] = useState(0);
  const [open, setOpen] = useState<Descriptor | null>(null);
  const view = useMemo(
    () => tableView(table.columns, table.data, { filter, sort: sort?.column ?? null, descending: sort?.descending ?? false, page, pageSize: PAGE_SIZE }),
    [table, filter, sort, page],
  );
  const current = Math.min(page, view.pages - 1);
  const cycle = (column: number) => {
    setPage(0);
    setSort((old) => (old?.column !== column ? { column, descending: false } : old.descending ? null : { column, descending: true }));
  };
  return (
    <div class="media-table">
      <div class="media-toolbar">
        <input
          type="search"
          class="media-filter"
          placeholder="Filter rows (text, or column:text)"
          aria-label={`${title}: filter rows`}
          value={filter}
          onInput={(event) => {
            setFilter((event.target as HTMLInputElement).value);
            setPage(0);
          }}
        />
        <span class="muted media-count">
          {view.total === table.data.length ? `${table.data.length} rows` : `${view.total} of ${table.data.length} rows`}
        </span>
      </div>
      <div class="media-table-scroll">
        <table>
          <thead>
            <tr>
              {table.columns.map((name, i) => {
                const sorted = sort?.column === i ? (sort.descending ? "descending" : "ascending") : "none";
                return (
                  <th key={name} aria-sort={sorted}>
                    <button type="button" class="media-sort" onClick={() => cycle(i)}>
                      {name}
                      <span aria-hidden="true">{sorted === "ascending" ? " ▲" : sorted === "descending" ? " ▼" : ""}</span>
                    </button>
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {view.rows.map((row, r) => (
              <tr key={r}>
                {table.columns.map((_, c) => (
                  <td key={c}>
                    <CellView cell={row[c]} resolve={resolve} onOpen={setOpen} />
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
        {view.total === 0 && <p class="media-none">No row matches “{filter}”.</p>}
      </div>
      <div class="media-pager">
        <button type="button" class="btn" disabled={current <= 0} onClick={() => setPage(current - 1)} aria-label="Previous page">
          ‹ Prev
        </button>
        <span class="media-page">
          Page {current + 1} of {view.pages}
        </span>
        <button type="button" class="btn" disabled={current >= view.pages - 1} onClick={() => setPage(current + 1)} aria-label="Next page">
          Next ›
        </button>
      </div>
      {open && <Lightbox image={open} title={title} onClose={() => setOpen(null)} />}
    </div>
  );
}

/** Loads the table file of a descriptor and hands it to `children`. */
export function WithTable({ value, children }: { value: Descriptor | undefined; children: (table: TableBody) => preact.ComponentChildren }) {
  const [table, setTable] = useState<TableBody | null>(null);
  const [error, setError] = useState<string | null>(null);
  const url = value?.url;
  useEffect(() => {
    setTable(null);
    setError(null);
    if (!url) return;
    let live = true;
    loadTable(url).then(
      (body) => live && setTable(body),
      (err: unknown) => live && setError(errorText(err)),
    );
    return () => {
      live = false;
    };
  }, [url]);
  if (!url) return <p class="media-none">No table at this step.</p>;
  if (error) return <p class="media-none error">Could not load the table: {error}</p>;
  if (!table) return <p class="media-none" aria-busy="true">Loading…</p>;
  return <>{children(table)}</>;
}

/** Shared by the table and chart panels: which run and which step to show. */
export function useRunAndStep(runs: MediaRun[], values: Map<string, MediaRunValues>) {
  const withValues = runs.filter((r) => (values.get(r.incarnation_id)?.steps.length ?? 0) > 0);
  const [chosen, setChosen] = useState<string | null>(null);
  const run = withValues.find((r) => r.incarnation_id === chosen) ?? withValues[0] ?? null;
  const steps = useMemo(() => stepsUnion([...values.values()]), [values]);
  const [step, setStep] = useState<number | null>(null);
  const shown = step ?? steps[steps.length - 1] ?? 0;
  return { withValues, run, setRun: setChosen, steps, shown, setStep };
}

export function RunPicker({ runs, run, onPick, label }: { runs: MediaRun[]; run: MediaRun | null; onPick: (id: string) => void; label: string }) {
  if (runs.length <= 1) return null;
  return (
    <select class="media-run-pick" aria-label={`${label}: run`} value={run?.incarnation_id ?? ""} onChange={(event) => onPick((event.target as HTMLSelectElement).value)}>
      {runs.map((r) => (
        <option key={r.incarnation_id} value={r.incarnation_id}>
          {r.name}
        </option>
      ))}
    </select>
  );
}

export function TablePanel({ metricKey, runs, values }: { metricKey: string; runs: MediaRun[]; values: Map<string, MediaRunValues> }) {
  const { withValues, run, setRun, steps, shown, setStep } = useRunAndStep(runs, values);
  const found = run ? valueAt(values.get(run.incarnation_id)?.steps ?? [], shown) : null;
  return (
    <>
      <div class="media-toolbar">
        <RunPicker runs={withValues} run={run} onPick={setRun} label={metricKey} />
        <StepSlider steps={steps} value={shown} onChange={setStep} label={metricKey} />
      </div>
      {run && found ? (
        <WithTable value={found.value}>
          {(table) => <TableView
              key={`${run.incarnation_id}:${found.step}`}
              table={table}
              resolve={(path) => mediaFileUrl(run.incarnation_id, path)}
              title={`${metricKey} · ${run.name}`}
            />}
        </WithTable>
      ) : (
        <p class="media-none">No table logged.</p>
      )}
    </>
  );
}
