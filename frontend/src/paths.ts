// URLs of the app's pages, and the run query every project view reads from the URL.
import type { RunQuery } from "./api";
import { enc, withQuery } from "./router";

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

export const LOGIN_PATH = "/login";

/** Why the login page was opened: the session ended, or a page needs a key. */
export type LoginReason = "expired" | "needed";

/** The login page, coming back to `next` (a path of this app) afterwards. */
export function loginPath(next?: string, why?: LoginReason): string {
  return withQuery(LOGIN_PATH, { next: next && next !== "/" ? safeNext(next) : null, why });
}

/** `next` if it is a path of this app, else `/`: the login page must not redirect to another site. */
export function safeNext(next: string | null | undefined): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  if (next === LOGIN_PATH || next.startsWith(`${LOGIN_PATH}?`)) return "/";
  return next;
}
