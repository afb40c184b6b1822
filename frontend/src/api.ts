// Typed client for the server's /api/v1 (the only thing the web app talks to).
import { enc } from "./router";

export interface Project {
  entity: string;
  name: string;
  created_at: number;
  run_count: number;
  running_count: number;
  last_activity: number | null;
}

export interface ProjectDetail extends Project {
  state_counts: Record<string, number>;
  columns: { config: string[]; summary: string[] };
  public: boolean;
}

export interface ForkedFrom {
  run_id: string | null;
  path: string | null;
  step: number | null;
  kind: "fork" | "rewind" | null;
  incarnation_id: string;
  archived: boolean;
  deleted: boolean;
}

export interface RunBrief {
  entity: string;
  project: string;
  run_id: string;
  path: string;
  incarnation_id: string;
  name: string;
  state: string;
  created_at: number;
  started_at: number;
  heartbeat_at: number;
  finished_at: number | null;
  runtime: number;
  duration: number;
  last_step: number;
  archived: boolean;
  ordinal: number;
  forked_from: ForkedFrom | null;
}

export interface RunItem extends RunBrief {
  notes: string;
  tags: string[];
  group: string;
  job_type: string;
  host: string;
  username: string;
  updated_at: number;
  exit_code: number | null;
  stop_requested: boolean;
  starting_step: number;
  config: Record<string, unknown>;
  summary: Record<string, unknown>;
}

export interface RunDetail extends RunItem {
  metadata: Record<string, unknown>;
  archived_incarnations: RunBrief[];
  forks: RunBrief[];
  current_incarnation_id: string;
}

export interface RunList {
  runs: RunItem[];
  total: number;
  limit: number;
  offset: number;
  order: string;
}

export interface KeyInfo {
  numeric: boolean;
  count: number;
  last_step: number;
  runs: number;
}

export interface Series {
  incarnation_id: string;
  key: string;
  x: (number | null)[];
  y: (number | null)[];
  count: number;
  sampled: boolean;
  last_step: number;
}

export interface GroupSeries {
  group: string;
  key: string;
  x: (number | null)[];
  mean: (number | null)[];
  min: (number | null)[];
  max: (number | null)[];
  runs: number;
  count: number;
  sampled: boolean;
}

export interface ConsoleLine {
  line_no: number;
  stream: string;
  ts: number;
  text: string;
}

export interface RunFile {
  path: string;
  size: number;
  sha256: string;
  updated_at: number;
  available: boolean;
}

export interface Alert {
  title: string;
  text: string;
  level: string;
  ts: number;
}

export interface ArtifactRef {
  id: string;
  entity: string;
  project: string;
  name: string;
  type: string;
  version: string;
  aliases: string[];
  digest: string;
  size: number;
  file_count: number;
  description: string | null;
  created_at: number;
}

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

export interface Viewer {
  username: string | null;
  entities: string[];
  default_entity: string | null;
  auth_required: boolean;
  admin: boolean;
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
  logout: () => request<{ ok: boolean }>("DELETE", "/api/v1/session", undefined, { quiet401: true }),
  projects: (search?: string) =>
    request<{ projects: Project[] }>("GET", `/api/v1/projects${search ? `?search=${enc(search)}` : ""}`),
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
  patch: (entity: string, project: string, runId: string, fields: Partial<Pick<RunItem, "name" | "notes" | "tags" | "group" | "job_type">>) =>
    request<RunDetail>("PATCH", runBase(entity, project, runId), fields),
  stop: (entity: string, project: string, runId: string) => request<RunDetail>("POST", `${runBase(entity, project, runId)}/stop`),
  move: (entity: string, project: string, runId: string, target: string) =>
    request<RunDetail>("POST", `${runBase(entity, project, runId)}/move`, { project: target }),
  remove: (entity: string, project: string, runId: string) => request<{ ok: boolean }>("DELETE", runBase(entity, project, runId)),
  keys: (incarnations: string[], stream: number) =>
    request<{ stream: number; keys: Record<string, KeyInfo> }>("POST", "/api/v1/series/keys", { incarnations, stream }),
  series: (
    body: { incarnations: string[]; keys: string[]; x: string; stream: number; buckets: number; min_step?: number; max_step?: number },
    signal?: AbortSignal,
  ) => request<{ series: Series[] }>("POST", "/api/v1/series", body, signal),
  groupSeries: (
    body: { groups: { name: string; incarnations: string[] }[]; keys: string[]; stream: number; buckets: number },
    signal?: AbortSignal,
  ) => request<{ series: GroupSeries[] }>("POST", "/api/v1/series/groups", body, signal),
  logs: (base: string, since: number) =>
    request<{ lines: ConsoleLine[]; next_line: number }>("GET", `${base}/logs?since=${since}`),
  files: (base: string) => request<{ files: RunFile[] }>("GET", `${base}/files`),
  alerts: (base: string) => request<{ alerts: Alert[] }>("GET", `${base}/alerts`),
  artifacts: (base: string) => request<{ logged: ArtifactRef[]; used: ArtifactRef[] }>("GET", `${base}/artifacts`),
};

export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
