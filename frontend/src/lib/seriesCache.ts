// Chart series cached per (incarnation, key, axis); a run is fetched again only when it changed.
import { api, type Series, type Stream } from "../api";

export interface SeriesTarget {
  incarnation: string;
  /** Changes whenever the run has new data (e.g. its last step and state). */
  version: string;
}

interface Entry {
  version: string;
  series: Series;
}

const MAX_ENTRIES = 4000;
const cache = new Map<string, Entry>();

function cacheKey(incarnation: string, key: string, x: string, stream: number, buckets: number): string {
  return `${incarnation}\u0000${key}\u0000${x}\u0000${stream}\u0000${buckets}`;
}

/** Series of `key` for every target; one request for those not cached at their version. */
export async function loadSeries(
  targets: SeriesTarget[],
  key: string,
  x: string,
  stream: Stream,
  buckets: number,
  signal?: AbortSignal,
): Promise<Map<string, Series>> {
  const out = new Map<string, Series>();
  const missing: string[] = [];
  for (const target of targets) {
    const hit = cache.get(cacheKey(target.incarnation, key, x, stream, buckets));
    if (hit && hit.version === target.version) out.set(target.incarnation, hit.series);
    else missing.push(target.incarnation);
  }
  if (missing.length) {
    const response = await api.series({ incarnations: missing, keys: [key], x, stream, buckets }, signal);
    const versions = new Map(targets.map((t) => [t.incarnation, t.version]));
    for (const series of response.series) {
      out.set(series.incarnation_id, series);
      const ck = cacheKey(series.incarnation_id, key, x, stream, buckets);
      cache.delete(ck);
      cache.set(ck, { version: versions.get(series.incarnation_id) ?? "", series });
    }
    while (cache.size > MAX_ENTRIES) {
      const oldest = cache.keys().next().value;
      if (oldest === undefined) break;
      cache.delete(oldest);
    }
  }
  return out;
}
