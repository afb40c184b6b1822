// The browser tab's title for the page on show: its parts, most specific first, then "branchline".
import { useEffect } from "preact/hooks";

export const APP_NAME = "branchline";

/** "loss-sweep-3 · Overview · me/vision · branchline": empty parts are left out. */
export function pageTitle(parts: readonly string[]): string {
  return [...parts.filter((part) => part.trim() !== ""), APP_NAME].join(" · ");
}

/** Sets `document.title` while mounted; renders nothing. */
export function PageTitle({ parts }: { parts: readonly string[] }) {
  const title = pageTitle(parts);
  useEffect(() => {
    document.title = title;
  }, [title]);
  return null;
}
