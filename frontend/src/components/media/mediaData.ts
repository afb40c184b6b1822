// Loading media values and files for the media panels.
import { useEffect, useRef, useState } from "preact/hooks";
import type { MediaRunValues } from "../../lib/media";

const HEADERS = { "Content-Type": "application/json", "X-Branchline-Client": "web" };

async function failure(response: Response, what: string): Promise<Error> {
  try {
    const body = (await response.json()) as { error?: { message?: string } };
    return new Error(body.error?.message ?? `${what}: ${response.status}`);
  } catch {
    return new Error(`${what}: ${response.status}`);
  }
}

/** `POST /api/v1/media`: a key's values (descriptors with file URLs) of each run. */
export async function loadMedia(incarnations: string[], key: string, limit: number, signal?: AbortSignal): Promise<MediaRunValues[]> {
  const response = await fetch("/api/v1/media", {
    method: "POST",
    headers: HEADERS,
    body: JSON.stringify({ incarnations, key, limit }),
    signal,
  });
  if (!response.ok) throw await failure(response, key);
  return ((await response.json()) as { runs: MediaRunValues[] }).runs;
}

export interface TableBody {
  columns: string[];
  data: unknown[][];
}

const tables = new Map<string, Promise<TableBody>>();

/** A logged table's JSON (`{"columns", "data"}`); the same file is fetched once per page load. */
export function loadTable(url: string): Promise<TableBody> {
  let found = tables.get(url);
  if (!found) {
    found = fetch(url).then(async (response) => {
      if (!response.ok) throw await failure(response, url);
      const body = (await response.json()) as Partial<TableBody>;
      return { columns: body.columns ?? [], data: body.data ?? [] };
    });
    found.catch(() => tables.delete(url));
    tables.set(url, found);
  }
  return found;
}

/** True once the element has come near the viewport (panels load their data only then). */
export function useVisible<T extends Element>(): [preact.RefObject<T>, boolean] {
  const ref = useRef<T>(null);
  const [visible, setVisible] = useState(false);
  useEffect(() => {
    const element = ref.current;
    if (!element || visible) return undefined;
    if (typeof IntersectionObserver !== "function") {
      setVisible(true);
      return undefined;
    }
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) {
        observer.disconnect();
        setVisible(true);
      }
    }, { rootMargin: "300px" });
    observer.observe(element);
    return () => observer.disconnect();
  }, [visible]);
  return [ref, visible];
}
