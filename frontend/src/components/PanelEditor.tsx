// The dialog that adds a panel or edits one: its type, metrics (several on one line chart), title,
// section, size and its own chart settings (x-axis, smoothing, log scale, maximum runs shown).
import { useEffect, useRef, useState } from "preact/hooks";
import { MAX_H, MAX_W, type PanelKind, type PanelSpec, type SectionSpec, normalizePanel } from "../lib/workspaceLayout";

export interface PanelDraft {
  panel: PanelSpec;
  sectionId: string;
  /** True when the panel is new (the dialog says "Add panel"). */
  adding: boolean;
}

const X_CHOICES: [string, string][] = [
  ["_step", "Step"],
  ["_runtime", "Relative time"],
  ["_timestamp", "Wall time"],
];

function numberOrNull(text: string): number | null {
  if (text.trim() === "") return null;
  const value = Number(text);
  return Number.isFinite(value) ? value : null;
}

export function PanelEditor({
  draft,
  sections,
  metricKeys,
  mediaKeys,
  defaultX,
  onSave,
  onCancel,
}: {
  draft: PanelDraft;
  sections: SectionSpec[];
  /** Numeric keys a line chart can show. */
  metricKeys: string[];
  /** Media keys, each shown by a media panel. */
  mediaKeys: string[];
  /** The workspace's x-axis (what "Workspace default" means). */
  defaultX: string;
  onSave: (panel: PanelSpec, sectionId: string) => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [kind, setKind] = useState<PanelKind>(draft.panel.kind);
  const [keys, setKeys] = useState<string[]>(draft.panel.keys);
  const [filter, setFilter] = useState("");
  const [title, setTitle] = useState(draft.panel.title ?? "");
  const [sectionId, setSectionId] = useState(draft.sectionId);
  const [w, setW] = useState(draft.panel.w);
  const [h, setH] = useState(draft.panel.h);
  const [x, setX] = useState(draft.panel.x ?? "");
  const [smoothing, setSmoothing] = useState(draft.panel.smoothing === null || draft.panel.smoothing === undefined ? "" : String(draft.panel.smoothing));
  const [logY, setLogY] = useState(draft.panel.log_y === null || draft.panel.log_y === undefined ? "" : draft.panel.log_y ? "log" : "linear");
  const [maxRuns, setMaxRuns] = useState(draft.panel.max_runs ? String(draft.panel.max_runs) : "");
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, []);

  const choices = kind === "media" ? mediaKeys : metricKeys;
  const needle = filter.trim().toLowerCase();
  const listed = choices.filter((k) => !needle || k.toLowerCase().includes(needle) || keys.includes(k)).slice(0, 300);
  const toggle = (key: string, on: boolean) => {
    if (kind === "media") setKeys(on ? [key] : []);
    else setKeys(on ? [...keys.filter((k) => k !== key), key] : keys.filter((k) => k !== key));
  };

  const save = () => {
    const chosen = keys.filter((k) => choices.includes(k) || draft.panel.keys.includes(k));
    if (!chosen.length) {
      setProblem(kind === "media" ? "Choose the media key to show." : "Choose at least one metric to chart.");
      return;
    }
    if (kind === "line" && chosen.length > 20) {
      setProblem("A chart shows at most 20 metrics: untick some.");
      return;
    }
    const smooth = numberOrNull(smoothing);
    if (smoothing.trim() !== "" && (smooth === null || smooth < 0 || smooth > 0.99)) {
      setProblem("Smoothing is a number from 0 to 0.99 (empty: the workspace's).");
      return;
    }
    const limit = numberOrNull(maxRuns);
    if (maxRuns.trim() !== "" && (limit === null || limit < 1 || limit > 500 || !Number.isInteger(limit))) {
      setProblem("Maximum runs is a whole number from 1 to 500 (empty: every visualized run).");
      return;
    }
    const panel = normalizePanel({
      id: draft.panel.id,
      kind,
      keys: chosen,
      title: title.trim() || null,
      w,
      h,
      x: kind === "line" && x ? x : null,
      smoothing: kind === "line" ? smooth : null,
      log_y: kind === "line" && logY ? logY === "log" : null,
      max_runs: limit,
    });
    ref.current?.close();
    onSave(panel, sections.some((s) => s.id === sectionId) ? sectionId : (sections[0]?.id ?? ""));
  };

  const cancel = () => {
    ref.current?.close();
    onCancel();
  };

  return (
    <dialog
      ref={ref}
      class="dialog panel-editor"
      aria-labelledby="panel-editor-title"
      onCancel={(event) => {
        event.preventDefault();
        cancel();
      }}
    >
      <form
        method="dialog"
        onSubmit={(event) => {
          event.preventDefault();
          save();
        }}
      >
        <h2 id="panel-editor-title">{draft.adding ? "Add panel" : "Edit panel"}</h2>
        <div class="editor-grid">
          <fieldset class="field editor-keys">
            <legend>{kind === "media" ? "Media key" : "Metrics (several share one chart)"}</legend>
            <div class="editor-kind" role="radiogroup" aria-label="Panel type">
              <label>
                <input type="radio" name="panel-kind" checked={kind === "line"} onChange={() => { setKind("line"); setKeys(keys.filter((k) => metricKeys.includes(k))); }} /> Line plot
              </label>
              <label>
                <input
                  type="radio"
                  name="panel-kind"
                  checked={kind === "media"}
                  disabled={!mediaKeys.length}
                  onChange={() => { setKind("media"); setKeys(keys.filter((k) => mediaKeys.includes(k)).slice(0, 1)); }}
                />{" "}
                Media{mediaKeys.length ? "" : " (none logged)"}
              </label>
            </div>
            <input
              type="search"
              class="input input-sm"
              placeholder="Filter keys…"
              aria-label="Filter keys"
              value={filter}
              onInput={(event) => setFilter((event.target as HTMLInputElement).value)}
            />
            <ul class="editor-key-list" aria-label={kind === "media" ? "Media keys" : "Metrics"}>
              {listed.map((key) => (
                <li key={key}>
                  <label>
                    <input
                      type={kind === "media" ? "radio" : "checkbox"}
                      name="panel-key"
                      value={key}
                      checked={keys.includes(key)}
                      onChange={(event) => toggle(key, (event.target as HTMLInputElement).checked)}
                    />{" "}
                    {key}
                  </label>
                </li>
              ))}
              {!listed.length && <li class="muted">No key matches.</li>}
            </ul>
          </fieldset>
          <div class="editor-settings">
            <label class="field">
              <span>Title</span>
              <input value={title} placeholder={keys.join(", ") || "the keys' names"} onInput={(event) => setTitle((event.target as HTMLInputElement).value)} maxLength={200} />
            </label>
            <label class="field">
              <span>Section</span>
              <select value={sections.some((s) => s.id === sectionId) ? sectionId : sections[0]?.id} onChange={(event) => setSectionId((event.target as HTMLSelectElement).value)}>
                {sections.map((s) => (
                  <option key={s.id} value={s.id}>
                    {s.name}
                  </option>
                ))}
              </select>
            </label>
            <div class="editor-row">
              <label class="field">
                <span>Width</span>
                <select value={String(w)} onChange={(event) => setW(Number((event.target as HTMLSelectElement).value))}>
                  {Array.from({ length: MAX_W }, (_, i) => i + 1).map((n) => (
                    <option key={n} value={n}>
                      {n} column{n === 1 ? "" : "s"}
                    </option>
                  ))}
                </select>
              </label>
              <label class="field">
                <span>Height</span>
                <select value={String(h)} onChange={(event) => setH(Number((event.target as HTMLSelectElement).value))}>
                  {Array.from({ length: MAX_H }, (_, i) => i + 1).map((n) => (
                    <option key={n} value={n}>
                      {n} row{n === 1 ? "" : "s"}
                    </option>
                  ))}
                </select>
              </label>
            </div>
            {kind === "line" && (
              <>
                <label class="field">
                  <span>X-axis</span>
                  <select value={x} onChange={(event) => setX((event.target as HTMLSelectElement).value)}>
                    <option value="">Workspace default ({X_CHOICES.find(([v]) => v === defaultX)?.[1] ?? defaultX})</option>
                    {X_CHOICES.map(([value, label]) => (
                      <option key={value} value={value}>
                        {label}
                      </option>
                    ))}
                    <optgroup label="Another metric">
                      {metricKeys.filter((k) => !keys.includes(k)).map((k) => (
                        <option key={k} value={k}>
                          {k}
                        </option>
                      ))}
                    </optgroup>
                  </select>
                </label>
                <div class="editor-row">
                  <label class="field">
                    <span>Smoothing</span>
                    <input
                      type="number"
                      min="0"
                      max="0.99"
                      step="0.01"
                      placeholder="workspace's"
                      value={smoothing}
                      onInput={(event) => setSmoothing((event.target as HTMLInputElement).value)}
                    />
                  </label>
                  <label class="field">
                    <span>Y-axis scale</span>
                    <select value={logY} onChange={(event) => setLogY((event.target as HTMLSelectElement).value)}>
                      <option value="">Workspace default</option>
                      <option value="linear">Linear</option>
                      <option value="log">Log</option>
                    </select>
                  </label>
                </div>
              </>
            )}
            <label class="field">
              <span>Maximum runs shown</span>
              <input
                type="number"
                min="1"
                max="500"
                step="1"
                placeholder="every visualized run"
                value={maxRuns}
                onInput={(event) => setMaxRuns((event.target as HTMLInputElement).value)}
              />
            </label>
          </div>
        </div>
        {problem && (
          <p class="error-text" role="alert">
            {problem}
          </p>
        )}
        <div class="dialog-actions">
          <button type="button" class="btn" onClick={cancel}>
            Cancel
          </button>
          <button type="submit" class="btn btn-primary">
            {draft.adding ? "Add panel" : "Save panel"}
          </button>
        </div>
      </form>
    </dialog>
  );
}
