// Who is logged in (from /api/v1/viewer), shared by the top bar and the login page.
import { useEffect, useState } from "preact/hooks";
import { ApiError, api, errorText, type Viewer } from "../api";
import { LOGIN_PATH, loginPath } from "../paths";
import { useLocation } from "../router";
import { toast } from "./Toast";

let viewer: Viewer | undefined;
let loading: Promise<void> | null = null;
const listeners = new Set<(value: Viewer | undefined) => void>();

export function setViewer(value: Viewer | undefined): void {
  viewer = value;
  for (const listener of listeners) listener(value);
}

/** Ask the server who we are. A 401 means a stale session: the server has just dropped its cookie, so ask once more. */
export function refreshViewer(): Promise<void> {
  loading ??= api
    .viewer()
    .catch((error: unknown) => {
      if (error instanceof ApiError && error.status === 401) return api.viewer();
      throw error;
    })
    .then(setViewer, () => {
      /* the server is unreachable: show no login controls rather than wrong ones */
    })
    .finally(() => {
      loading = null;
    });
  return loading;
}

export function useViewer(): Viewer | undefined {
  const [value, set] = useState<Viewer | undefined>(viewer);
  useEffect(() => {
    listeners.add(set);
    if (viewer === undefined) void refreshViewer();
    else set(viewer);
    return () => {
      listeners.delete(set);
    };
  }, []);
  return value;
}

/** Log out, then reload the app at home so nothing fetched with the session stays on screen or in caches. */
export async function logOut(): Promise<void> {
  try {
    await api.logout();
  } catch (error) {
    toast(`Could not log out: ${errorText(error)}`, "error");
    return;
  }
  window.location.assign("/");
}

/** The top bar's login state; nothing at all when the server has no login (`branchline ui`). */
export function UserMenu() {
  const who = useViewer();
  const { path, query } = useLocation();
  if (!who || !who.auth_required) return null;
  if (who.username) {
    return (
      <div class="topbar-user">
        <span class="topbar-username" data-testid="viewer">
          <span class="sr-only">Logged in as </span>
          <span aria-hidden="true" class="topbar-avatar">
            {who.username.slice(0, 1).toUpperCase()}
          </span>
          {who.username}
        </span>
        <button type="button" class="topbar-button" onClick={() => void logOut()}>
          Log out
        </button>
      </div>
    );
  }
  if (path === LOGIN_PATH) return null;
  const here = path + (query.toString() ? `?${query}` : "");
  return (
    <a class="topbar-button" href={loginPath(here)}>
      Log in
    </a>
  );
}
