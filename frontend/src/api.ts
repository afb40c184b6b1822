// Typed client for the server's /api/v1 (the only thing the web app talks to).
import type { components } from "./generated/openapi";
import { enc } from "./router";

// The response shapes come from the server's OpenAPI schema: scripts/build-frontend.sh dumps it and
// generates ./generated/openapi.ts (not committed), so a field changed on the server changes here.
type Schemas = components["schemas"];

export type Project = Schemas["Project"];
export type ProjectDetail = Schemas["ProjectDetail"];
export type ForkedFrom = Schemas["ForkedFrom"];
export type RunBrief = Schemas["RunBrief"];
export type RunItem = Schemas["RunItem"];
export type RunDetail = Schemas["RunDetail"];
export type RunList = Schemas["RunList"];
export type KeyInfo = Schemas["KeyInfo"];
export type Series = Schemas["Series"];
export type GroupSeries = Schemas["GroupSeries"];
export type ConsoleLine = Schemas["ConsoleLine"];
export type RunFile = Schemas["RunFile"];
export type Alert = Schemas["Alert"];
export type ArtifactRef = Schemas["ArtifactRef"];
export type Viewer = Schemas["Viewer"];
export type Workspace = Schemas["Workspace"];
export type WorkspaceBody = Schemas["WorkspaceBody"];
export type WorkspaceView = Workspace["view"];
type Ok = Schemas["Ok"];
type RunPatch = Schemas["RunPatch"];
type SeriesRequest = Schemas["SeriesRequest"];
type GroupSeriesRequest = Schemas["GroupSeriesRequest"];
/** 0: history, 1: system metrics. */
export type Stream = SeriesRequest["stream"];

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** The header the server requires on state-changing requests authenticated by the session cookie (CSRF guard). */
const CLIENT_HEADERS = { "X-Branchline-Client": "web" };

/** ApiError.code of a 401 whose session cookie named a key the server no longer accepts. */
export const SESSION_ENDED = "session_ended";

type UnauthorizedHandler = (error: ApiError) => void;
let unauthorized: UnauthorizedHandler | null = null;

/** Who handles a 401 from any API call (the app sends the user to the login page). */
export function onUnauthorized(handler: UnauthorizedHandler | null): void {
  unauthorized = handler;
}

interface RequestOptions {
  signal?: AbortSignal;
  /** Leave a 401 to the caller instead of sending the user to the login page (unless the session ended). */
  quiet401?: boolean;
}

async function request<T>(method: string, url: string, body?: unknown, options: RequestOptions | AbortSignal = {}): Promise<T> {
  const { signal, quiet401 } = options instanceof AbortSignal ? { signal: options, quiet401: false } : options;
  const response = await fetch(url, {
    method,
    signal,
    // Same-origin fetches send the session cookie; the client header makes cookie-authenticated writes valid.
    headers: body === undefined ? { Accept: "application/json", ...CLIENT_HEADERS } : { "Content-Type": "application/json", ...CLIENT_HEADERS },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data as { error?: { code?: string; message?: string; field?: string } } | null)?.error;
    // The server marks a 401 for a session whose key was revoked with RFC 6750's invalid_token.
    const ended = response.status === 401 && /error="invalid_token"/.test(response.headers.get("WWW-Authenticate") ?? "");
    const code = ended ? SESSION_ENDED : (error?.code ?? "error");
    const failure = new ApiError(response.status, code, error?.message ?? `${method} ${url}: ${response.status}`, error?.field);
    // An ended session is always reported (even by quiet calls such as /viewer): whichever request
    // carried the stale cookie first is the only one told, since its answer deletes the cookie.
    if (response.status === 401 && unauthorized && (!quiet401 || ended)) unauthorized(failure);
    throw failure;
  }
  return data as T;
}

export function runBase(entity: string, project: string, runId: string, incarnation?: string | null): string {
  const base = `/api/v1/runs/${enc(entity)}/${enc(project)}/${enc(runId)}`;
  return incarnation ? `${base}/incarnations/${enc(incarnation)}` : base;
}

export interface RunQuery {
  search?: string;
  states?: string[];
  filters?: string;
  order?: string;
  limit?: number;
  offset?: number;
}

export const api = {
  viewer: () => request<Viewer>("GET", "/api/v1/viewer", undefined, { quiet401: true }),
  login: (apiKey: string) => request<Viewer>("POST", "/api/v1/session", { api_key: apiKey }, { quiet401: true }),
  logout: () => request<Ok>("DELETE", "/api/v1/session", undefined, { quiet401: true }),
  projects: (search?: string) =>
    request<Schemas["ProjectList"]>("GET", `/api/v1/projects${search ? `?search=${enc(search)}` : ""}`),
  project: (entity: string, project: string) =>
    request<ProjectDetail>("GET", `/api/v1/projects/${enc(entity)}/${enc(project)}`),
  setPublic: (entity: string, project: string, isPublic: boolean) =>
    request<ProjectDetail>("PATCH", `/api/v1/projects/${enc(entity)}/${enc(project)}`, { public: isPublic }),
  runs: (entity: string, project: string, q: RunQuery, signal?: AbortSignal) => {
    const params = new URLSearchParams();
    if (q.search) params.set("search", q.search);
    if (q.states?.length) params.set("state", q.states.join(","));
    if (q.filters) params.set("filters", q.filters);
    if (q.order) params.set("order", q.order);
    params.set("limit", String(q.limit ?? 50));
    params.set("offset", String(q.offset ?? 0));
    return request<RunList>("GET", `/api/v1/runs/${enc(entity)}/${enc(project)}?${params}`, undefined, signal);
  },
  run: (entity: string, project: string, runId: string, incarnation?: string | null) =>
    request<RunDetail>("GET", runBase(entity, project, runId, incarnation)),
  patch: (entity: string, project: string, runId: string, fields: RunPatch) =>
    request<RunDetail>("PATCH", runBase(entity, project, runId), fields),
  stop: (entity: string, project: string, runId: string) => request<RunDetail>("POST", `${runBase(entity, project, runId)}/stop`),
  move: (entity: string, project: string, runId: string, target: string) =>
    request<RunDetail>("POST", `${runBase(entity, project, runId)}/move`, { project: target }),
  remove: (entity: string, project: string, runId: string) => request<Ok>("DELETE", runBase(entity, project, runId)),
  keys: (incarnations: string[], stream: number) =>
    request<Schemas["KeysResponse"]>("POST", "/api/v1/series/keys", { incarnations, stream }),
  series: (body: SeriesRequest, signal?: AbortSignal) => request<Schemas["SeriesResponse"]>("POST", "/api/v1/series", body, signal),
  groupSeries: (body: GroupSeriesRequest, signal?: AbortSignal) => request<Schemas["GroupSeriesResponse"]>("POST", "/api/v1/series/groups", body, signal),
  logs: (base: string, since: number) =>
    request<Schemas["ConsoleLog"]>("GET", `${base}/logs?since=${since}`),
  files: (base: string) => request<Schemas["FileList"]>("GET", `${base}/files`),
  alerts: (base: string) => request<Schemas["AlertList"]>("GET", `${base}/alerts`),
  artifacts: (base: string) => request<Schemas["ArtifactList"]>("GET", `${base}/artifacts`),
  workspace: (entity: string, project: string, view: WorkspaceView) =>
    request<Workspace>("GET", `/api/v1/projects/${enc(entity)}/${enc(project)}/workspace?view=${view}`),
  saveWorkspace: (entity: string, project: string, view: WorkspaceView, layout: WorkspaceBody["layout"], baseVersion: number | null) =>
    request<Workspace>("PUT", `/api/v1/projects/${enc(entity)}/${enc(project)}/workspace?view=${view}`, { layout, base_version: baseVersion }),
  resetWorkspace: (entity: string, project: string, view: WorkspaceView) =>
    request<Workspace>("DELETE", `/api/v1/projects/${enc(entity)}/${enc(project)}/workspace?view=${view}`),
};

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
