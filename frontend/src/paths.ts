// URLs of the app's pages, and the run query every project view reads from the URL.
import type { RunQuery } from "./api";
import { enc } from "./router";

export function projectPath(entity: string, project: string): string {
  return `/${enc(entity)}/${enc(project)}`;
}

export function runPath(entity: string, project: string, runId: string, tab?: string, incarnation?: string | null): string {
  let path = `${projectPath(entity, project)}/runs/${enc(runId)}`;
  if (incarnation) path += `/incarnations/${enc(incarnation)}`;
  return tab && tab !== "overview" ? `${path}/${tab}` : path;
}

export function runQueryFrom(query: URLSearchParams): RunQuery {
  const state = query.get("state");
  return {
    search: query.get("q") ?? undefined,
    states: state ? state.split(",") : undefined,
    filters: query.get("f") ?? undefined,
    order: query.get("sort") || "-created_at",
  };
}
