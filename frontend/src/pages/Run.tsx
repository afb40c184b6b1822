// A run's page: Overview, Workspace, System, Logs, Files and Artifacts tabs, for the current
// incarnation or an archived one.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api, errorText, runBase, type ArtifactRef, type RunBrief, type RunDetail } from "../api";
import { ChartControls, readChartSettings, readClosed, toggleClosed } from "../components/ChartControls";
import { confirmDialog } from "../components/Dialog";
import { KeyValueTable } from "../components/KeyValueTable";
import { Menu } from "../components/Menu";
import { PanelGrid, sectionOf, systemSectionOf } from "../components/PanelGrid";
import { EditableWorkspace } from "../components/EditableWorkspace";
import { runMenuItems } from "../components/runActions";
import { PageTitle } from "../components/PageTitle";
import { StateBadge } from "../components/StateBadge";
import { TagEditor } from "../components/TagEditor";
import { toast } from "../components/Toast";
import { runColor } from "../lib/colors";
import { LiveBadge } from "../components/LiveBadge";
import { formatBytes, formatDate, formatDuration, formatValue } from "../lib/format";
import { useAsync, usePoll } from "../lib/hooks";
import { projectPath, runPath } from "../paths";
import { navigate, useLocation } from "../router";
import { ArtifactsTab, FilesTab, LogsTab } from "./RunData";

export const RUN_TABS = ["overview", "workspace", "system", "logs", "files", "artifacts"] as const;
export type RunTab = (typeof RUN_TABS)[number];
const TAB_LABELS: Record<RunTab, string> = {
  overview: "Overview",
  workspace: "Workspace",
  system: "System",
  logs: "Logs",
  files: "Files",
  artifacts: "Artifacts",
};

function isRunning(state: string): boolean {
  return state === "running" || state === "preempting" || state === "pending";
}

// A stop from the UI: when it was asked for while it is under way (the SDK interrupts the process,
// then terminates it; the server marks the run killed if nothing confirms), the note once it ended.
type StopInfo = { requested_at?: number; ended_at?: number; note?: string };

function stopInfo(run: RunDetail): StopInfo {
  const stop = run.metadata.stop;
  return stop !== null && typeof stop === "object" ? (stop as StopInfo) : {};
}

function clock(epoch: number): string {
  return new Date(epoch * 1000).toLocaleTimeString();
}

function StopStatus({ run }: { run: RunDetail }) {
  const stop = stopInfo(run);
  if (run.stop_requested && isRunning(run.state)) {
    const when = typeof stop.requested_at === "number" ? ` at ${clock(stop.requested_at)}` : "";
    return (
      <span class="muted" role="status" data-testid="stop-status">
        {` · stop requested${when}; escalating: interrupt, then terminate the process if it ignores the stop`}
      </span>
    );
  }
  if (run.state === "killed" && typeof stop.note === "string") {
    return (
      <span class="muted" data-testid="stop-status">
        {` · ${stop.note}`}
      </span>
    );
  }
  return null;
}

function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="field-row">
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

function text(value: unknown): string {
  if (value === null || value === undefined || value === "") return "–";
  return typeof value === "string" ? value : formatValue(value);
}

function hardware(meta: Record<string, unknown>): string {
  const parts: string[] = [];
  const cpu = meta.cpu as { model?: string } | undefined;
  if (meta.cpu_count) parts.push(`${String(meta.cpu_count)} CPU cores${cpu?.model ? ` (${cpu.model})` : ""}`);
  const memory = meta.memory as { total?: number } | undefined;
  if (memory?.total) parts.push(`${formatBytes(memory.total)} RAM`);
  const gpus = meta.gpu_devices as { name?: string }[] | undefined;
  if (Array.isArray(gpus) && gpus.length) parts.push(`${gpus.length} × ${gpus[0]?.name ?? "GPU"}`);
  else if (meta.gpu) parts.push(String(meta.gpu));
  return parts.join(", ") || "–";
}

function command(meta: Record<string, unknown>): string {
  const program = (meta.program as string | undefined) ?? (meta.codePath as string | undefined);
  if (!program) return "–";
  const args = Array.isArray(meta.args) ? (meta.args as unknown[]).map(String) : [];
  return ["python", program, ...args].join(" ");
}

function Lineage({ run }: { run: RunDetail }) {
  const from = run.forked_from;
  return (
    <section class="card" aria-labelledby="lineage-title">
      <header class="card-header">
        <h2 id="lineage-title">Lineage</h2>
      </header>
      <dl class="fields">
        <Field label="Forked From">
          {from ? (
            <span data-testid="forked-from">
              {from.kind === "rewind" ? "Rewound from " : "Forked from "}
              {from.deleted || !from.run_id ? (
                <span>{from.path ?? "a deleted run"} (deleted)</span>
              ) : from.kind === "rewind" || from.archived ? (
                <a href={runPath(run.entity, run.project, from.run_id, "overview", from.incarnation_id)}>
                  {from.kind === "rewind" ? `archived incarnation ${from.incarnation_id}` : `${from.path} (incarnation ${from.incarnation_id})`}
                </a>
              ) : (
                <a href={runPath(run.entity, run.project, from.run_id)}>{from.path}</a>
              )}
              {" at step "}
              <strong>{from.step}</strong>
            </span>
          ) : (
            "–"
          )}
        </Field>
        <Field label="Incarnations">
          {run.archived_incarnations.length === 0 ? (
            "Only this one"
          ) : (
            <ul class="plain-list" data-testid="incarnations">
              {run.archived_incarnations.map((inc) => (
                <li key={inc.incarnation_id}>
                  <a href={runPath(run.entity, run.project, run.run_id, "overview", inc.incarnation_id)}>
                    #{inc.ordinal} · {inc.incarnation_id}
                  </a>{" "}
                  <StateBadge state={inc.state} compact /> archived · steps to {inc.last_step} · started {formatDate(inc.started_at)}
                  {inc.incarnation_id === run.incarnation_id && <strong> (viewing)</strong>}
                </li>
              ))}
              <li>
                <a href={runPath(run.entity, run.project, run.run_id)}>
                  #{run.archived ? "current" : run.ordinal} · {run.current_incarnation_id}
                </a>{" "}
                current{run.incarnation_id === run.current_incarnation_id && <strong> (viewing)</strong>}
              </li>
            </ul>
          )}
        </Field>
        <Field label="Forks">
          {run.forks.length === 0 ? (
            "None"
          ) : (
            <ul class="plain-list" data-testid="forks">
              {run.forks.map((fork: RunBrief) => (
                <li key={fork.incarnation_id}>
                  <a href={runPath(fork.entity, fork.project, fork.run_id)}>{fork.name}</a> ({fork.run_id}) from step {fork.forked_from?.step}{" "}
                  <StateBadge state={fork.state} compact />
                </li>
              ))}
            </ul>
          )}
        </Field>
      </dl>
    </section>
  );
}

// Unsaved description drafts, by run: they outlive the Overview when the user switches tabs (and a
// page reload, through sessionStorage), so typed text is never dropped without a word.
const DRAFT_PREFIX = "branchline:notes-draft:";

function loadDraft(key: string): string | null {
  try {
    return window.sessionStorage.getItem(DRAFT_PREFIX + key);
  } catch {
    return null;
  }
}

function storeDraft(key: string, text: string | null): void {
  try {
    if (text === null) window.sessionStorage.removeItem(DRAFT_PREFIX + key);
    else window.sessionStorage.setItem(DRAFT_PREFIX + key, text);
  } catch {
    // storage disabled: the draft lives as long as the editor
  }
}

/** The run's description (its notes): text, a pencil to edit it, Save and Cancel; drafts are kept. */
function NotesEditor({ run, onSaved }: { run: RunDetail; onSaved: () => void }) {
  const key = run.path;
  const saved = loadDraft(key);
  const [draft, setDraft] = useState<string | null>(saved !== null && saved !== run.notes ? saved : null);
  const [saving, setSaving] = useState(false);
  const live = useRef(draft);
  live.current = draft;
  useEffect(() => {
    // Leaving the Overview (another tab, another page) with unsaved text keeps it as a draft, and says so.
    return () => {
      if (live.current !== null && live.current !== run.notes) toast("Your unsaved description is kept as a draft on the Overview.");
    };
  }, [run.path, run.notes]);
  useEffect(() => {
    if (draft === null || draft === run.notes) return undefined;
    const warn = (event: BeforeUnloadEvent) => {
      event.preventDefault();
      event.returnValue = "";
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [draft, run.notes]);
  if (run.archived) return <p class="notes">{run.notes || "–"}</p>;
  const edit = (text: string | null) => {
    setDraft(text);
    storeDraft(key, text);
  };
  if (draft === null) {
    return (
      <div class="notes-view">
        <span class={run.notes ? "notes-text" : "notes-text muted"} data-testid="run-notes">
          {run.notes || "Add a description of this run"}
        </span>
        <button type="button" class="btn-icon btn-pencil" aria-label="Edit description" title="Edit description" onClick={() => edit(run.notes)}>
          <svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true">
            <path d="M11.5 1.8a1.6 1.6 0 0 1 2.3 2.3l-8.4 8.4-3.1.8.8-3.1z" fill="none" stroke="currentColor" stroke-width="1.4" stroke-linejoin="round" />
          </svg>
        </button>
      </div>
    );
  }
  return (
    <form
      class="notes-editor"
      onSubmit={async (event) => {
        event.preventDefault();
        setSaving(true);
        try {
          await api.patch(run.entity, run.project, run.run_id, { notes: draft });
          live.current = null;
          edit(null);
          toast("Description saved");
          onSaved();
        } catch (err) {
          toast(errorText(err), "error");
        } finally {
          setSaving(false);
        }
      }}
    >
      <label class="sr-only" for="run-notes">
        Description
      </label>
      <textarea
        id="run-notes"
        class="input"
        rows={3}
        placeholder="What is this run about?"
        value={draft}
        ref={(el) => el?.focus()}
        onInput={(event) => edit((event.target as HTMLTextAreaElement).value)}
      />
      {draft !== run.notes && saved !== null && saved === draft && (
        <p class="muted notes-draft" role="note">
          Unsaved draft: save it or cancel.
        </p>
      )}
      <div class="notes-actions">
        <button
          type="button"
          class="btn btn-xs"
          onClick={() => {
            live.current = null;
            edit(null);
          }}
        >
          Cancel
        </button>
        <button type="submit" class="btn btn-primary btn-xs" disabled={saving}>
          {saving ? "Saving…" : "Save"}
        </button>
      </div>
    </form>
  );
}

/** The run's own privacy: private runs are readable by the entity's members only, even in a public project. */
function RunPrivacy({ run, onChanged }: { run: RunDetail; onChanged: () => void }) {
  const [busy, setBusy] = useState(false);
  const flip = async () => {
    setBusy(true);
    try {
      await api.patch(run.entity, run.project, run.run_id, { private: !run.private });
      toast(run.private ? `${run.name} is visible with its project again` : `${run.name} is now private to ${run.entity}`);
      onChanged();
    } catch (err) {
      toast(errorText(err), "error");
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="privacy">
      <span data-testid="run-privacy-state">{run.private ? `Private: only members of ${run.entity} see this run` : "Visible to everyone who can read the project"}</span>
      <button
        type="button"
        role="switch"
        class="switch"
        aria-checked={run.private}
        aria-label={`Run ${run.name} is private`}
        disabled={busy || run.archived}
        onClick={flip}
      >
        <span class="switch-knob" aria-hidden="true" />
      </button>
    </span>
  );
}

/** The run's artifacts on the Overview: what it logged (outputs) and used (inputs), linked to the Artifacts tab. */
function ArtifactSummary({ run }: { run: RunDetail }) {
  const base = runBase(run.entity, run.project, run.run_id, run.archived ? run.incarnation_id : null);
  const found = useAsync(() => api.artifacts(base), [base]);
  if (!found.data) return null;
  const tab = runPath(run.entity, run.project, run.run_id, "artifacts", run.archived ? run.incarnation_id : null);
  const list = (title: string, id: string, rows: ArtifactRef[], empty: string) => (
    <section class="card" aria-labelledby={id}>
      <header class="card-header">
        <h2 id={id}>{title}</h2>
      </header>
      {rows.length === 0 ? (
        <p class="muted pad">{empty}</p>
      ) : (
        <ul class="plain-list pad artifact-list">
          {rows.map((a) => (
            <li key={a.id}>
              <a href={tab}>
                {a.name}:{a.version}
              </a>{" "}
              <span class="muted">
                {a.type} · {a.file_count} file{a.file_count === 1 ? "" : "s"} · {formatBytes(a.size)}
                {a.project !== run.project || a.entity !== run.entity ? ` · ${a.entity}/${a.project}` : ""}
              </span>{" "}
              {a.aliases.map((alias) => (
                <span class="tag" key={alias}>
                  {alias}
                </span>
              ))}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
  return (
    <>
      {list("Artifact Outputs", "artifact-outputs-title", found.data.logged, "This run logged no artifacts.")}
      {found.data.used.length > 0 && list("Artifact Inputs", "artifact-inputs-title", found.data.used, "")}
    </>
  );
}

/** Copy `text` to the clipboard; the fallback covers pages without the async clipboard (plain http). */
async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    return;
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    if (!ok) throw new Error("The browser refused to copy to the clipboard.");
  }
}

/** The project's privacy (public: anyone may read it; private: its entity's members), with a switch. */
function Privacy({ run }: { run: RunDetail }) {
  const project = useAsync(() => api.project(run.entity, run.project), [run.entity, run.project]);
  const [busy, setBusy] = useState(false);
  if (project.error !== undefined) return <span class="muted">{errorText(project.error)}</span>;
  if (!project.data) return <span class="muted">…</span>;
  const isPublic = project.data.public;
  const flip = async () => {
    setBusy(true);
    try {
      await api.setPublic(run.entity, run.project, !isPublic);
      toast(`${run.entity}/${run.project} is now ${isPublic ? "private" : "public"}`);
      project.reload();
    } catch (err) {
      toast(errorText(err), "error");
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="privacy">
      <span data-testid="privacy-state">{isPublic ? "Public: anyone can read this project" : `Private: only members of ${run.entity}`}</span>
      <button
        type="button"
        role="switch"
        class="switch"
        aria-checked={isPublic}
        aria-label={`Project ${run.project} is public`}
        disabled={busy || run.archived}
        onClick={flip}
      >
        <span class="switch-knob" aria-hidden="true" />
      </button>
    </span>
  );
}

function Overview({ run, reload }: { run: RunDetail; reload: () => void }) {
  const meta = run.metadata;
  const git = (meta.git as { remote?: string; commit?: string } | undefined) ?? {};
  const alerts = useAsync(() => api.alerts(runBase(run.entity, run.project, run.run_id, run.archived ? run.incarnation_id : null)), [run.incarnation_id]);
  return (
    <div class="overview">
      <div class="overview-col">
      <section class="card" aria-labelledby="about-title">
        <header class="card-header">
          <h2 id="about-title">Overview</h2>
          <Menu
            label="More actions for this run"
            class="btn-icon"
            items={[
              {
                label: "Copy immutable run ID",
                onSelect: () => {
                  copyText(run.incarnation_id).then(
                    () => toast(`Copied immutable run ID ${run.incarnation_id}`),
                    (err: unknown) => toast(errorText(err), "error"),
                  );
                },
              },
            ]}
          >
            <span aria-hidden="true">…</span>
          </Menu>
        </header>
        <dl class="fields">
          <Field label="Name">{run.name}</Field>
          <Field label="Description">
            <NotesEditor run={run} onSaved={reload} />
          </Field>
          <Field label="Tags">
            <TagEditor
              tags={run.tags}
              disabled={run.archived}
              onChange={async (tags) => {
                try {
                  await api.patch(run.entity, run.project, run.run_id, { tags });
                  reload();
                } catch (err) {
                  toast(errorText(err), "error");
                }
              }}
            />
          </Field>
          <Field label="Privacy">
            <RunPrivacy run={run} onChanged={reload} />
            <div class="privacy-project">
              <span class="privacy-project-label">Project:</span>
              <Privacy run={run} />
            </div>
          </Field>
          <Field label="Author">{text(run.username)}</Field>
          <Field label="State">
            <StateBadge state={run.state} />
            {run.exit_code !== null && <span class="muted"> exit code {run.exit_code}</span>}
            <StopStatus run={run} />
          </Field>
          <Field label="Start time">{formatDate(run.started_at)}</Field>
          <Field label="Duration">
            <span data-testid="run-duration" title="Time the run was actively running, pauses excluded">
              {formatDuration(run.duration)}
            </span>
          </Field>
          <Field label="Runtime">
            <span data-testid="run-runtime" title="Wall-clock time from start to end, pauses included">
              {formatDuration(run.runtime)}
            </span>
          </Field>
          <Field label="Last step">{run.last_step >= 0 ? run.last_step : "–"}</Field>
          <Field label="Hostname">{text(run.host || meta.host)}</Field>
          <Field label="OS">{text(meta.os)}</Field>
          <Field label="Python version">{text(meta.python)}</Field>
          <Field label="Python executable">
            <code>{text(meta.executable)}</code>
          </Field>
          <Field label="Command">
            <code>{command(meta)}</code>
          </Field>
          <Field label="Git repository">{text(git.remote)}</Field>
          <Field label="Git commit">{git.commit ? <code>{git.commit}</code> : "–"}</Field>
          <Field label="System hardware">{hardware(meta)}</Field>
          <Field label="CLI version">{text(meta.branchline_version)}</Field>
          <Field label="Group">{text(run.group)}</Field>
          <Field label="Job type">{text(run.job_type)}</Field>
          <Field label="Run path">
            <code>{run.path}</code>
          </Field>
          <Field label="Incarnation">
            <code>{run.incarnation_id}</code> (#{run.ordinal}
            {run.archived ? ", archived" : ""})
          </Field>
        </dl>
      </section>
      </div>
      <div class="overview-col">
      <Lineage run={run} />
      <ArtifactSummary run={run} />
      {alerts.data && alerts.data.alerts.length > 0 && (
        <section class="card" aria-labelledby="alerts-title">
          <header class="card-header">
            <h2 id="alerts-title">Alerts</h2>
          </header>
          <ul class="plain-list pad">
            {alerts.data.alerts.map((alert, i) => (
              <li key={i} class={`alert alert-${alert.level.toLowerCase()}`}>
                <strong>{alert.title}</strong> — {alert.text} <span class="muted">{formatDate(alert.ts)}</span>
              </li>
            ))}
          </ul>
        </section>
      )}
      <KeyValueTable title="Config" doc={run.config} empty="No config was set." />
      <KeyValueTable title="Summary" doc={Object.fromEntries(Object.entries(run.summary).filter(([k]) => !k.startsWith("_") || k === "_step" || k === "_runtime"))} empty="Nothing logged yet." />
      </div>
    </div>
  );
}

function RunCharts({ run, stream }: { run: RunDetail; stream: 0 | 1 }) {
  const { query } = useLocation();
  const settings = readChartSettings(query, stream === 1 ? "_runtime" : "_step");
  const closed = readClosed(query, []);
  const version = stream === 0 ? `${run.last_step}:${run.state}` : `${Math.floor(run.heartbeat_at)}:${run.state}`;
  const keys = useAsync(() => api.keys([run.incarnation_id], stream), [run.incarnation_id, stream, version]);
  const visual = [
    { runId: run.run_id, incarnation: run.incarnation_id, label: run.name, color: runColor(`${run.entity}/${run.project}`, run), version, live: run.state === "running" },
  ];
  const numeric = Object.entries(keys.data?.keys ?? {}).filter(([, info]) => info.numeric).map(([k]) => k);
  const hasMedia = Object.values(keys.data?.keys ?? {}).some((info) => info.media_type);
  if (keys.data && numeric.filter((k) => !k.startsWith("_")).length === 0 && !hasMedia) {
    return (
      <p class="empty">
        {stream === 1
          ? "No system metrics were recorded for this run (they are sampled while it runs unless disabled)."
          : "This run has not logged any metrics yet."}
      </p>
    );
  }
  return (
    <div class="run-charts">
      <ChartControls
        x={settings.x}
        smoothing={settings.smoothing}
        logScale={settings.logScale}
        panelSearch={settings.panelSearch}
        metricKeys={stream === 0 ? numeric : []}
      />
      {stream === 0 ? (
        // The run pages of a project share one editable layout (saved on the server, view "run").
        <EditableWorkspace
          entity={run.entity}
          project={run.project}
          view="run"
          keys={keys.data?.keys ?? {}}
          runs={visual}
          stream={0}
          settings={settings}
          sectionOf={sectionOf}
          closed={closed}
          onToggle={(s) => toggleClosed(closed, s)}
          search={settings.panelSearch}
          syncKey={`${run.incarnation_id}:${stream}:${settings.x}`}
        />
      ) : (
        <PanelGrid
          keys={keys.data?.keys ?? {}}
          runs={visual}
          stream={stream}
          settings={settings.x === "_step" ? { ...settings, x: "_runtime" } : settings}
          sectionOf={systemSectionOf}
          closed={closed}
          onToggle={(s) => toggleClosed(closed, s)}
          search={settings.panelSearch}
          syncKey={`${run.incarnation_id}:${stream}:${settings.x}`}
        />
      )}
    </div>
  );
}

export function RunPage({
  entity,
  project,
  runId,
  incarnation,
  tab,
}: {
  entity: string;
  project: string;
  runId: string;
  incarnation: string | null;
  tab: RunTab;
}) {
  const detail = useAsync(() => api.run(entity, project, runId, incarnation), [entity, project, runId, incarnation]);
  const run = detail.data;
  const running = run ? isRunning(run.state) : false;
  // A run that is not there yet may be on its way: the SDK's writer creates a new run just after
  // init() returns. Keep asking, and keep the message up while asking again.
  const lastError = useRef<unknown>(undefined);
  if (detail.error !== undefined || run) lastError.current = detail.error;
  const error = detail.error ?? (detail.loading ? lastError.current : undefined);
  const missing = !run && error instanceof ApiError && error.status === 404;
  usePoll(detail.reload, 2500, running || missing);
  const projects = useAsync(() => api.projects(), [entity]);
  const names = (projects.data?.projects ?? []).filter((p) => p.entity === entity).map((p) => p.name);

  if (!run) {
    return (
      <div class="page">
        <PageTitle parts={[runId, `${entity}/${project}`]} />
        {error !== undefined ? (
          <div class="empty">
            <p class="error-text">{errorText(error)}</p>
            {missing && !incarnation && (
              <p class="muted" role="status">
                A run that has just started shows up here within a few seconds.
              </p>
            )}
            <a href={projectPath(entity, project)}>Back to {project}</a>
          </div>
        ) : (
          <p class="muted pad" aria-busy="true">
            Loading run…
          </p>
        )}
      </div>
    );
  }
  const base = runBase(entity, project, runId, run.archived ? run.incarnation_id : null);
  return (
    <>
    <PageTitle parts={[run.name, TAB_LABELS[tab] ?? "", `${entity}/${project}`]} />
    <div class="page page-run">
      <header class="page-head">
        <nav class="crumbs" aria-label="Breadcrumb">
          <a href="/">Projects</a>
          <span aria-hidden="true">/</span>
          <a href={projectPath(entity, project)}>{project}</a>
          <span aria-hidden="true">/</span>
          <a href={`${projectPath(entity, project)}/table`}>Runs</a>
        </nav>
        <div class="run-title">
          <span class="swatch big" style={{ background: runColor(`${run.entity}/${run.project}`, run) }} data-testid="run-color" aria-hidden="true" />
          <h1>{run.name}</h1>
          <StateBadge state={run.state} />
          {!run.archived && <LiveBadge live={run.state === "running"} title="This run is running: its charts update as it logs" />}
          <code class="muted">{run.run_id}</code>
          <div class="spacer" />
          {!run.archived && running && (
            <button
              type="button"
              class="btn btn-danger"
              disabled={run.stop_requested}
              title={
                run.stop_requested && typeof stopInfo(run).requested_at === "number"
                  ? `Stop requested at ${clock(stopInfo(run).requested_at as number)}`
                  : undefined
              }
              onClick={async () => {
                const ok = await confirmDialog({
                  title: "Stop this run?",
                  message: `${run.name} will be interrupted at its next heartbeat and end as killed.`,
                  confirmLabel: "Stop run",
                  danger: true,
                });
                if (!ok) return;
                try {
                  await api.stop(entity, project, runId);
                  toast("Stop requested");
                  detail.reload();
                } catch (err) {
                  toast(errorText(err), "error");
                }
              }}
            >
              {run.stop_requested ? "Stopping…" : "Stop run"}
            </button>
          )}
          {!run.archived && (
            <Menu
              label={`Actions for ${run.name}`}
              class="btn"
              items={runMenuItems(run, {
                onChanged: detail.reload,
                onDeleted: () => navigate(projectPath(entity, project)),
                onMoved: (target) => navigate(runPath(entity, target, runId)),
                projects: names,
              })}
            >
              Actions ▾
            </Menu>
          )}
        </div>
        {run.archived && (
          <div class="banner" role="note">
            You are viewing archived incarnation #{run.ordinal} ({run.incarnation_id}) of this run; it is read-only.{" "}
            <a href={runPath(entity, project, runId, tab)}>View the current incarnation</a>
          </div>
        )}
        <nav class="tabs" aria-label="Run views">
          {RUN_TABS.map((name) => (
            <a
              key={name}
              href={runPath(entity, project, runId, name, run.archived ? run.incarnation_id : null)}
              class={tab === name ? "tab active" : "tab"}
              aria-current={tab === name ? "page" : undefined}
            >
              {TAB_LABELS[name]}
            </a>
          ))}
        </nav>
      </header>
      <main class="tab-body">
        {tab === "overview" && <Overview run={run} reload={detail.reload} />}
        {tab === "workspace" && <RunCharts run={run} stream={0} />}
        {tab === "system" && <RunCharts run={run} stream={1} />}
        {tab === "logs" && <LogsTab base={base} running={running} runId={run.run_id} />}
        {tab === "files" && <FilesTab base={base} />}
        {tab === "artifacts" && <ArtifactsTab base={base} />}
      </main>
    </div>
    </>
  );
}
