// The editable workspace: the automatic layout until the user changes it, then the layout saved on
// the server for the whole project (every browser sees it). "Reset workspace" returns to automatic.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, type KeyInfo, type Stream, type Workspace, type WorkspaceBody, type WorkspaceView, api, errorText } from "../api";
import {
  type Layout,
  type PanelSpec,
  type SectionSpec,
  addPanel,
  addSection,
  autoLayout,
  findPanel,
  forSaving,
  movePanel,
  newId,
  parseLayout,
  removePanel,
  removeSection,
  renameSection,
  resizePanel,
  updatePanel,
  withNewKeys,
} from "../lib/workspaceLayout";
import { confirmDialog, promptDialog } from "./Dialog";
import { Menu } from "./Menu";
import { type ChartSettings, LayoutGrid, type LayoutEdits, type VisualGroup, type VisualRun, keyKinds } from "./PanelGrid";
import { type PanelDraft, PanelEditor } from "./PanelEditor";
import { toast } from "./Toast";
import { useViewer } from "./UserMenu";
import { mediaKindOf } from "./media/MediaPanel";

type Status = "loading" | "automatic" | "saved" | "saving" | "error";

const STATUS_TEXT: Record<Status, string> = {
  loading: "Loading layout…",
  automatic: "Automatic layout",
  saved: "Saved layout",
  saving: "Saving…",
  error: "Not saved",
};

export function EditableWorkspace({
  entity,
  project,
  view,
  keys,
  runs,
  groups = null,
  stream,
  settings,
  sectionOf,
  closed,
  onToggle,
  search,
  syncKey,
  canEdit = true,
}: {
  entity: string;
  project: string;
  view: WorkspaceView;
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
  canEdit?: boolean;
}) {
  // Only the project's members may save its layout: others (a public project's readers) see it as is.
  const viewer = useViewer();
  const editable = canEdit && (!viewer || !viewer.auth_required || viewer.entities.includes(entity));
  const [saved, setSaved] = useState<Workspace | null>(null);
  const [status, setStatus] = useState<Status>("loading");
  const [problem, setProblem] = useState<string | null>(null);
  // The layout being shown after a local edit, before (and while) the server stores it.
  const [edited, setEdited] = useState<Layout | null>(null);
  const [draft, setDraft] = useState<PanelDraft | null>(null);
  const version = useRef(0);
  const pending = useRef<Layout | null>(null);
  const running = useRef(false);

  const load = () => {
    api.workspace(entity, project, view).then(
      (answer) => {
        version.current = answer.version;
        setSaved(answer);
        setEdited(null);
        setStatus(answer.layout ? "saved" : "automatic");
      },
      (err: unknown) => {
        setStatus("error");
        setProblem(`Could not load the saved layout: ${errorText(err)}`);
      },
    );
  };
  useEffect(load, [entity, project, view]);

  const kinds = useMemo(() => keyKinds(keys), [keys]);
  const savedLayout = useMemo(() => (saved?.layout ? parseLayout(saved.layout) : null), [saved]);
  const layout = useMemo(() => {
    const base = edited ?? savedLayout;
    return base ? withNewKeys(base, kinds, sectionOf) : autoLayout(kinds, sectionOf);
  }, [edited, savedLayout, kinds, sectionOf]);

  // Saves run one at a time, each from the version the last one answered; edits made meanwhile
  // are coalesced into the next save.
  const flush = async () => {
    if (running.current) return;
    running.current = true;
    try {
      while (pending.current) {
        const next = pending.current;
        pending.current = null;
        setStatus("saving");
        try {
          const answer = await api.saveWorkspace(entity, project, view, next as unknown as WorkspaceBody["layout"], version.current);
          version.current = answer.version;
          if (!pending.current) {
            setSaved(answer);
            setEdited(null);
            setStatus("saved");
            setProblem(null);
          }
        } catch (err) {
          pending.current = null;
          if (err instanceof ApiError && err.status === 409) {
            toast("Someone else changed this workspace meanwhile: showing their layout. Make your change again.", "error");
            load();
          } else {
            setStatus("error");
            setProblem(`The layout was not saved: ${errorText(err)}`);
          }
        }
      }
    } finally {
      running.current = false;
    }
  };

  const commit = (next: Layout) => {
    const full = forSaving(next, Object.keys(keys));
    setEdited(full);
    pending.current = full;
    void flush();
  };

  const reset = async () => {
    const ok = await confirmDialog({
      title: "Reset workspace",
      message: "Go back to the automatic layout (one panel per metric, in sections by prefix) for everyone who opens this project?",
      confirmLabel: "Reset workspace",
      danger: true,
    });
    if (!ok) return;
    try {
      const answer = await api.resetWorkspace(entity, project, view);
      version.current = answer.version;
      pending.current = null;
      setSaved(answer);
      setEdited(null);
      setStatus("automatic");
      setProblem(null);
    } catch (err) {
      setProblem(`Could not reset the workspace: ${errorText(err)}`);
    }
  };

  const metricKeys = useMemo(
    () => Object.entries(keys).filter(([k, info]) => info.numeric && !k.startsWith("_")).map(([k]) => k).sort(),
    [keys],
  );
  const mediaKeys = useMemo(
    () => Object.entries(keys).filter(([, info]) => mediaKindOf(info.media_type) !== null).map(([k]) => k).sort(),
    [keys],
  );

  const newSection = async () => {
    const name = await promptDialog({ title: "Add section", label: "Section name", confirmLabel: "Add section" });
    if (name) commit(addSection(layout, name));
  };

  const edits: LayoutEdits | null = editable
    ? {
        onEdit: (panel) => {
          const found = findPanel(layout, panel.id);
          setDraft({ panel, sectionId: found?.section.id ?? layout.sections[0]?.id ?? "", adding: false });
        },
        onRemove: (panel) => commit(removePanel(layout, panel.id)),
        onResize: (panel, w, h) => commit(resizePanel(layout, panel.id, w, h)),
        onMove: (id, sectionId, beforeId) => {
          const target = layout.sections.find((s) => s.id === sectionId);
          const index = beforeId && target ? target.panels.findIndex((p) => p.id === beforeId) : -1;
          commit(movePanel(layout, id, sectionId, index));
        },
        onAddPanel: (section) =>
          setDraft({ panel: { id: newId(), kind: "line", keys: [], w: 1, h: 1 }, sectionId: section.id, adding: true }),
        sectionMenu: (section: SectionSpec) => (
          <Menu
            label={`Section ${section.name} actions`}
            items={[
              {
                label: "Rename section",
                onSelect: () => {
                  void promptDialog({ title: "Rename section", label: "Section name", initial: section.name, confirmLabel: "Rename" }).then(
                    (name) => name && commit(renameSection(layout, section.id, name)),
                  );
                },
              },
              {
                label: "Delete section",
                danger: true,
                disabled: layout.sections.length < 2,
                onSelect: () => commit(removeSection(layout, section.id)),
              },
            ]}
          />
        ),
      }
    : null;

  const save = (panel: PanelSpec, sectionId: string) => {
    setDraft(null);
    let next = layout;
    const found = findPanel(next, panel.id);
    if (!found) {
      // The dialog may have opened before the keys (and so the sections) were listed.
      if (!next.sections.length) next = addSection(next, "Charts");
      const target = next.sections.find((s) => s.id === sectionId) ?? next.sections[0];
      next = addPanel(next, target.id, panel);
    } else {
      next = updatePanel(next, panel.id, panel);
      if (found.section.id !== sectionId) next = movePanel(next, panel.id, sectionId, -1);
    }
    commit(next);
  };

  if (status === "loading") return <p class="muted" aria-busy="true">Loading the workspace…</p>;
  return (
    <div class="editable-workspace">
      {editable && (
        <div class="workspace-bar" role="toolbar" aria-label="Workspace layout">
          <span class={`workspace-status status-${status}`} data-testid="workspace-status" data-version={version.current}>
            {STATUS_TEXT[status]}
          </span>
          <span class="workspace-bar-gap" />
          <button
            type="button"
            class="btn"
            onClick={() =>
              setDraft({ panel: { id: newId(), kind: "line", keys: [], w: 1, h: 1 }, sectionId: layout.sections[0]?.id ?? "", adding: true })
            }
          >
            + Add panel
          </button>
          <button type="button" class="btn" onClick={() => void newSection()}>
            + Add section
          </button>
          <button type="button" class="btn" disabled={status === "automatic" && !edited} onClick={() => void reset()}>
            Reset workspace
          </button>
        </div>
      )}
      {problem && (
        <p class="error-text" role="alert">
          {problem}
        </p>
      )}
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
        edits={edits}
        idPrefix={view}
      />
      {draft && (
        <PanelEditor
          draft={draft}
          sections={layout.sections.length ? layout.sections : [{ id: "", name: "Charts", panels: [] }]}
          metricKeys={metricKeys}
          mediaKeys={mediaKeys}
          defaultX={settings.x}
          onSave={save}
          onCancel={() => setDraft(null)}
        />
      )}
    </div>
  );
}
