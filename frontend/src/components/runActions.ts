// The actions of a run's kebab menu: rename, stop, move, copy id, delete.
import { api, errorText, type RunItem } from "../api";
import { confirmDialog, promptDialog } from "./Dialog";
import type { MenuItem } from "./Menu";
import { toast } from "./Toast";

export function runMenuItems(
  run: Pick<RunItem, "entity" | "project" | "run_id" | "name" | "state">,
  {
    onChanged,
    onDeleted,
    onMoved,
    projects = [],
  }: { onChanged: () => void; onDeleted: () => void; onMoved?: (project: string) => void; projects?: string[] },
): MenuItem[] {
  const running = run.state === "running" || run.state === "preempting" || run.state === "pending";
  const items: MenuItem[] = [
    {
      label: "Rename",
      onSelect: async () => {
        const name = await promptDialog({ title: "Rename run", label: "Name", initial: run.name, confirmLabel: "Rename" });
        if (!name || name === run.name) return;
        try {
          await api.patch(run.entity, run.project, run.run_id, { name });
          toast(`Renamed to ${name}`);
          onChanged();
        } catch (error) {
          toast(errorText(error), "error");
        }
      },
    },
  ];
  if (running) {
    items.push({
      label: "Stop run",
      onSelect: async () => {
        const ok = await confirmDialog({
          title: "Stop this run?",
          message: `${run.name} will be interrupted at its next heartbeat and end as killed.`,
          confirmLabel: "Stop run",
          danger: true,
        });
        if (!ok) return;
        try {
          await api.stop(run.entity, run.project, run.run_id);
          toast("Stop requested");
          onChanged();
        } catch (error) {
          toast(errorText(error), "error");
        }
      },
    });
  }
  items.push(
    {
      label: "Move to project…",
      onSelect: async () => {
        const target = await promptDialog({
          title: "Move run",
          label: "Destination project",
          initial: "",
          confirmLabel: "Move",
          suggestions: projects.filter((p) => p !== run.project),
        });
        if (!target || target === run.project) return;
        try {
          await api.move(run.entity, run.project, run.run_id, target);
          toast(`Moved ${run.name} to ${target}`);
          if (onMoved) onMoved(target);
          else onChanged();
        } catch (error) {
          toast(errorText(error), "error");
        }
      },
    },
    {
      label: "Copy run id",
      onSelect: async () => {
        try {
          await navigator.clipboard.writeText(run.run_id);
          toast(`Copied ${run.run_id}`);
        } catch {
          toast(`Run id: ${run.run_id}`);
        }
      },
    },
    {
      label: "Delete run…",
      danger: true,
      onSelect: async () => {
        const ok = await confirmDialog({
          title: "Delete this run?",
          message: `${run.name} (${run.run_id}) and its history, logs and files will be deleted. Forks keep the history they inherited. This cannot be undone.`,
          confirmLabel: "Delete",
          danger: true,
        });
        if (!ok) return;
        try {
          await api.remove(run.entity, run.project, run.run_id);
          toast(`Deleted ${run.name}`);
          onDeleted();
        } catch (error) {
          toast(errorText(error), "error");
        }
      },
    },
  );
  return items;
}
