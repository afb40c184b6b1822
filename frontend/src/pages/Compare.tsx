// Selected runs side by side (/<entity>/<project>/compare?runs=a,b): their overview fields, config
// and summary as flattened keys, one row per key and one column per run, differences highlighted.
import { useMemo } from "preact/hooks";
import { api, ApiError, errorText, type RunDetail } from "../api";
import { StateBadge } from "../components/StateBadge";
import { compareDocs, comparePath, parseRunIds, type CompareRow } from "../lib/compare";
import { formatDate, formatDuration, formatValue, truncateName, type TruncMode } from "../lib/format";
import { useAsync } from "../lib/hooks";
import { loadTruncMode, runtimeSeconds } from "../lib/runColumns";
import { projectPath, runPath } from "../paths";
import { navigate, setQuery, useLocation } from "../router";

/** Pixels of the key column: the same in the three tables, so their run columns line up. */
const KEY_WIDTH = 300;
/** Characters of a run name a column heading shows. */
const HEAD_CHARS = 24;

interface Loaded {
  runs: RunDetail[];
  missing: { runId: string; message: string }[];
}

async function loadRuns(entity: string, project: string, ids: string[]): Promise<Loaded> {
  const results = await Promise.allSettled(ids.map((id) => api.run(entity, project, id)));
  const loaded: Loaded = { runs: [], missing: [] };
  results.forEach((result, index) => {
    if (result.status === "fulfilled") loaded.runs.push(result.value);
    else {
      const notFound = result.reason instanceof ApiError && result.reason.status === 404;
      loaded.missing.push({ runId: ids[index], message: notFound ? "no such run in this project" : errorText(result.reason) });
    }
  });
  return loaded;
}

/** The fields of the run page's Overview that are worth comparing. */
function overviewDoc(run: RunDetail): Record<string, unknown> {
  return {
    State: run.state,
    Group: run.group || null,
    "Job type": run.job_type || null,
    Tags: run.tags.length ? run.tags.join(", ") : null,
    Created: formatDate(run.created_at),
    Runtime: formatDuration(runtimeSeconds(run)),
    "Last step": run.last_step,
    Host: run.host || null,
    Notes: run.notes || null,
  };
}

function withoutInternal(doc: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(doc).filter(([key]) => !key.startsWith("_wandb")));
}

function CompareTable({ title, rows, runs, onlyDiff, search, trunc }: { title: string; rows: CompareRow[]; runs: RunDetail[]; onlyDiff: boolean; search: string; trunc: TruncMode }) {
  const needle = search.trim().toLowerCase();
  const differing = rows.filter((r) => r.differs).length;
  const shown = rows.filter((r) => (!onlyDiff || r.differs) && (!needle || r.key.toLowerCase().includes(needle)));
  const id = `compare-${title.toLowerCase()}`;
  return (
    <section class="card compare-section" aria-labelledby={id}>
      <header class="card-header">
        <h2 id={id}>{title}</h2>
        <span class="muted" data-testid={`${id}-count`}>
          {differing} of {rows.length} key{rows.length === 1 ? "" : "s"} differ{differing === 1 && rows.length !== 1 ? "s" : ""}
        </span>
      </header>
      {rows.length === 0 ? (
        <p class="muted pad">None of these runs has a {title.toLowerCase()}.</p>
      ) : (
        <div class="compare-scroll">
          <table class="data-table compare-table" aria-label={`${title} compared`} style={{ minWidth: `${KEY_WIDTH + runs.length * 150}px` }}>
            <thead>
              <tr>
                <th scope="col" style={{ width: `${KEY_WIDTH}px` }}>
                  Key
                </th>
                {runs.map((run) => (
                  <th scope="col" key={run.run_id} title={run.name}>
                    {truncateName(run.name, HEAD_CHARS, trunc)}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {shown.map((row) => {
                const first = formatValue(row.values[0]);
                return (
                  <tr key={row.key} data-key={row.key} class={row.differs ? "differs" : undefined}>
                    <th scope="row" title={row.key}>
                      {row.key}
                    </th>
                    {row.values.map((value, index) => {
                      const text = value === undefined ? "" : formatValue(value);
                      const odd = row.differs && (index > 0 ? formatValue(value) !== first || (value === undefined) !== (row.values[0] === undefined) : false);
                      return (
                        <td key={runs[index].run_id} class={[odd ? "cell-differs" : "", value === undefined ? "missing" : ""].filter(Boolean).join(" ") || undefined} title={text.length > 40 ? text : undefined}>
                          {value === undefined ? <span class="muted" aria-label="not set">–</span> : text}
                        </td>
                      );
                    })}
                  </tr>
                );
              })}
            </tbody>
          </table>
          {shown.length === 0 && <p class="muted pad">{onlyDiff ? "These runs agree on every key." : "No key matches."}</p>}
        </div>
      )}
    </section>
  );
}

export function ComparePage({ entity, project }: { entity: string; project: string }) {
  const { query } = useLocation();
  const ids = parseRunIds(query.get("runs"));
  const onlyDiff = query.get("diff") === "1";
  const search = query.get("k") ?? "";
  const trunc = loadTruncMode(entity, project, query.get("trunc"));
  const loaded = useAsync(() => loadRuns(entity, project, ids), [entity, project, ids.join(",")]);
  const runs = loaded.data?.runs ?? [];
  const sections = useMemo(
    () => ({
      overview: compareDocs(runs.map(overviewDoc), false),
      config: compareDocs(runs.map((r) => withoutInternal(r.config))),
      summary: compareDocs(runs.map((r) => withoutInternal(r.summary))),
    }),
    [runs],
  );
  const remove = (runId: string) => navigate(comparePath(entity, project, ids.filter((id) => id !== runId), onlyDiff));

  return (
    <div class="page page-compare">
      <header class="page-head">
        <nav class="crumbs" aria-label="Breadcrumb">
          <a href="/">Projects</a>
          <span aria-hidden="true">/</span>
          <span>{entity}</span>
          <span aria-hidden="true">/</span>
          <a href={projectPath(entity, project)}>{project}</a>
          <span aria-hidden="true">/</span>
          <h1>Compare runs</h1>
        </nav>
      </header>
      <div class="compare-bar">
        <a class="btn" href={`${projectPath(entity, project)}/table`}>
          Back to the runs table
        </a>
        <label class="control-check">
          <input type="checkbox" checked={onlyDiff} onChange={(event) => setQuery({ diff: (event.target as HTMLInputElement).checked ? "1" : null }, false)} />
          <span>Only differences</span>
        </label>
        <label class="control">
          <span class="sr-only">Find a key</span>
          <input type="search" class="input input-sm" placeholder="Find a key…" value={search} onInput={(event) => setQuery({ k: (event.target as HTMLInputElement).value || null })} />
        </label>
      </div>
      {ids.length < 2 && (
        <p class="muted" role="status">
          Select two or more runs in the <a href={`${projectPath(entity, project)}/table`}>runs table</a> and press Compare, or name them in the address: <code>compare?runs=id1,id2</code>.
        </p>
      )}
      {loaded.error !== undefined && <p class="error-text" role="alert">Could not load the runs: {errorText(loaded.error)}</p>}
      {loaded.data?.missing.map((m) => (
        <p class="error-text" role="alert" key={m.runId}>
          Run <code>{m.runId}</code>: {m.message}.
        </p>
      ))}
      {loaded.loading && !loaded.data && ids.length > 0 && (
        <p class="muted" aria-busy="true">
          Loading {ids.length} runs…
        </p>
      )}
      {runs.length > 0 && (
        <>
          <ul class="compare-runs" aria-label="Compared runs">
            {runs.map((run) => (
              <li key={run.run_id} class="compare-run">
                <StateBadge state={run.state} compact />
                <a class="run-name" href={runPath(entity, project, run.run_id)} title={run.name}>
                  {truncateName(run.name, 32, trunc)}
                </a>
                <button type="button" class="btn-icon" aria-label={`Remove ${run.name} from the comparison`} title="Remove from the comparison" onClick={() => remove(run.run_id)}>
                  <span aria-hidden="true">×</span>
                </button>
              </li>
            ))}
          </ul>
          <CompareTable title="Overview" rows={sections.overview} runs={runs} onlyDiff={onlyDiff} search={search} trunc={trunc} />
          <CompareTable title="Config" rows={sections.config} runs={runs} onlyDiff={onlyDiff} search={search} trunc={trunc} />
          <CompareTable title="Summary" rows={sections.summary} runs={runs} onlyDiff={onlyDiff} search={search} trunc={trunc} />
        </>
      )}
    </div>
  );
}
