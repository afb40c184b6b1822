// A tiny client-side router: the URL (path + query) is the single source of view state.
import { useEffect, useState } from "preact/hooks";

export interface Location {
  path: string;
  query: URLSearchParams;
}

type Listener = () => void;
const listeners = new Set<Listener>();

function current(): Location {
  return { path: window.location.pathname, query: new URLSearchParams(window.location.search) };
}

function notify(): void {
  for (const listener of listeners) listener();
}

window.addEventListener("popstate", notify);

/** Go to `url` (path and query); `replace` keeps the history entry (for typing in a search box). */
export function navigate(url: string, replace = false): void {
  const target = new URL(url, window.location.origin);
  const now = window.location.pathname + window.location.search;
  if (target.pathname + target.search === now) return;
  if (replace) window.history.replaceState(null, "", target.pathname + target.search);
  else window.history.pushState(null, "", target.pathname + target.search);
  if (!replace) window.scrollTo(0, 0);
  notify();
}

/** Change some query parameters of the current URL; empty values are removed. */
export function setQuery(patch: Record<string, string | number | boolean | null | undefined>, replace = true): void {
  const query = new URLSearchParams(window.location.search);
  for (const [name, value] of Object.entries(patch)) {
    if (value === null || value === undefined || value === "" || value === false) query.delete(name);
    else query.set(name, String(value));
  }
  const search = query.toString();
  navigate(window.location.pathname + (search ? `?${search}` : ""), replace);
}

export function useLocation(): Location {
  const [location, setLocation] = useState<Location>(current);
  useEffect(() => {
    const listener = () => setLocation(current());
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
  return location;
}

/** Path with the given query parameters (only those that are set). */
export function withQuery(path: string, query: Record<string, string | null | undefined>): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value) params.set(name, value);
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

/** Let plain left clicks on same-origin links navigate without a page load. */
export function interceptLinks(root: HTMLElement): void {
  root.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey)
      return;
    const anchor = (event.target as Element | null)?.closest("a");
    if (!anchor || anchor.target || anchor.hasAttribute("download")) return;
    const href = anchor.getAttribute("href");
    if (!href || !href.startsWith("/") || href.startsWith("/api/")) return;
    event.preventDefault();
    navigate(href);
  });
}

export function enc(part: string): string {
  return encodeURIComponent(part);
}
