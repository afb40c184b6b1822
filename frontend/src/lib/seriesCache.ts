// Chart series cached per (incarnation, key, axis, buckets). A run whose data changed (a live run)
// is read again incrementally: only the points after the last step the cache holds (`min_step`),
// appended to what it has. Never a whole history on every tick.
//
// When an appended read is not what a full read would give, the cache reads the whole series again:
//  - a complete (not downsampled) series is extended while the result stays complete, that is while
//    it holds at most 2 × buckets points (past that the server would downsample it: read it in full);
//  - a downsampled series (against `_step`) is extended with the new points, themselves reduced to
//    `buckets` min/max buckets, so its tail is drawn at least as finely as a full read would draw it;
//    once it holds twice the points a full read returns, it is read in full again (so full reads of a
//    long live run happen each time its point count roughly doubles, not on every tick);
//  - against another axis (`_runtime`, `_timestamp`, a metric) only a complete series is extended,
//    and only while the new points' x values continue after the last one held.
//
// An incremental read is not cancelled when its caller gives up (a chart asks again on every poll,
// and aborting each read in flight would starve a slow server's charts): it completes into the
// cache, and the next call for the same series waits for it and reads on from there.
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
/** Incremental reads in flight, by cache key. */
const inflight = new Map<string, Promise<unknown>>();

function aborted(): DOMException {
  return new DOMException("The series read was cancelled.", "AbortError");
}

/** What the cache did, for the bench and the browser tests (window.__seriesStats). */
export const seriesStats = { full: 0, incremental: 0, requests: 0, fallbacks: 0 };

let incremental = true;

/** Turn incremental reads off (every changed series is read in full), for comparisons in the bench. */
export function setIncremental(on: boolean): void {
  incremental = on;
}

if (typeof window !== "undefined") {
  try {
    if (localStorage.getItem("branchline.fullRefetch") === "1") incremental = false;
  } catch {
    /* no storage: the default */
  }
  (window as unknown as { __seriesStats: typeof seriesStats }).__seriesStats = seriesStats;
}

function cacheKey(incarnation: string, key: string, x: string, stream: number, buckets: number): string {
  return `${incarnation}\u0000${key}\u0000${x}\u0000${stream}\u0000${buckets}`;
}

function lastX(series: Series): number | null {
  for (let i = series.x.length - 1; i >= 0; i -= 1) {
    const v = series.x[i];
    if (v !== null) return v;
  }
  return null;
}

/**
 * `head` (a cached series) followed by `tail` (the same series read from `min_step`, where `min_step`
 * may be at or before head's last step when reads are shared between runs); null when the result
 * would differ from a full read in a way a chart can show (see the rules at the top of this file).
 */
export function mergeTail(head: Series, tail: Series, x: string, buckets: number): Series | null {
  const end = lastX(head);
  if (end === null) return null;
  let from = 0;
  if (x === "_step") {
    // A shared read starts at the earliest step any run asked for: drop what head already has.
    while (from < tail.x.length && (tail.x[from] === null || (tail.x[from] as number) <= end)) from += 1;
  } else if (tail.x.length && (tail.x[0] === null || (tail.x[0] as number) < end)) {
    return null; // the axis does not continue (e.g. a fork's runtime): only a full read sorts it
  }
  const addX = from ? tail.x.slice(from) : tail.x;
  const addY = from ? tail.y.slice(from) : tail.y;
  const lastStep = Math.max(head.last_step, tail.last_step);
  if (!head.sampled) {
    if (tail.sampled) return null;
    const count = head.count + addX.length;
    if (count > 2 * buckets) return null;
    if (!addX.length) return { ...head, last_step: lastStep };
    return { ...head, x: head.x.concat(addX), y: head.y.concat(addY), count, last_step: lastStep };
  }
  if (x !== "_step") return null;
  if (head.x.length + addX.length > 2 * (2 * buckets + 2)) return null;
  if (!addX.length) return { ...head, last_step: lastStep };
  const count = head.count + (tail.sampled ? tail.count : addX.length);
  return { ...head, x: head.x.concat(addX), y: head.y.concat(addY), count, last_step: lastStep, sampled: true };
}

/** Incremental reads grouped so that each group is one request: runs whose next step is close. */
function groupTails(tails: { incarnation: string; from: number }[], x: string, buckets: number): { from: number; ids: string[] }[] {
  const sorted = [...tails].sort((a, b) => a.from - b.from);
  const groups: { from: number; ids: string[] }[] = [];
  for (const tail of sorted) {
    const group = groups[groups.length - 1];
    // Against `_step` a shared read may start a little early (the overlap is dropped); against any
    // other axis the points carry no step, so only runs asking for the same step share a read.
    const near = x === "_step" ? tail.from - (group?.from ?? 0) <= Math.max(1, Math.floor(buckets / 4)) : tail.from === group?.from;
    if (group && near) group.ids.push(tail.incarnation);
    else groups.push({ from: tail.from, ids: [tail.incarnation] });
  }
  return groups;
}

function remember(ck: string, version: string, series: Series): void {
  cache.delete(ck);
  cache.set(ck, { version, series });
}

/** Series of `key` for every target; one request for those not cached at their version, and one per
 * group of incremental reads for those cached at an older version. */
export async function loadSeries(
  targets: SeriesTarget[],
  key: string,
  x: string,
  stream: Stream,
  buckets: number,
  signal?: AbortSignal,
): Promise<Map<string, Series>> {
  const pending = targets.map((t) => inflight.get(cacheKey(t.incarnation, key, x, stream, buckets))).filter((p) => p !== undefined);
  if (pending.length) await Promise.allSettled(pending);
  if (signal?.aborted) throw aborted();
  const out = new Map<string, Series>();
  const full: string[] = [];
  const tails: { incarnation: string; from: number }[] = [];
  const versions = new Map(targets.map((t) => [t.incarnation, t.version]));
  for (const target of targets) {
    const hit = cache.get(cacheKey(target.incarnation, key, x, stream, buckets));
    if (hit && hit.version === target.version) out.set(target.incarnation, hit.series);
    else if (hit && incremental && hit.series.x.length && hit.series.last_step >= 0) tails.push({ incarnation: target.incarnation, from: hit.series.last_step + 1 });
    else full.push(target.incarnation);
  }
  const requests: Promise<void>[] = [];
  const readFull = async (ids: string[]) => {
    seriesStats.requests += 1;
    seriesStats.full += ids.length;
    const response = await api.series({ incarnations: ids, keys: [key], x, stream, buckets }, signal);
    for (const series of response.series) {
      out.set(series.incarnation_id, series);
      remember(cacheKey(series.incarnation_id, key, x, stream, buckets), versions.get(series.incarnation_id) ?? "", series);
    }
  };
  if (full.length) requests.push(readFull(full));
  for (const group of groupTails(tails, x, buckets)) {
    const read = (async () => {
        seriesStats.requests += 1;
        seriesStats.incremental += group.ids.length;
        // No signal: the read completes into the cache even if this caller is gone (see the top).
        const response = await api.series({ incarnations: group.ids, keys: [key], x, stream, buckets, min_step: group.from });
        const again: string[] = [];
        const answered = new Set(response.series.map((s) => s.incarnation_id));
        for (const id of group.ids) {
          // Nothing came back for it (no longer logs the key): what the cache holds stays right.
          const held = cache.get(cacheKey(id, key, x, stream, buckets));
          if (!answered.has(id) && held) out.set(id, held.series);
        }
        for (const tail of response.series) {
          const ck = cacheKey(tail.incarnation_id, key, x, stream, buckets);
          const head = cache.get(ck)?.series;
          const merged = head ? mergeTail(head, tail, x, buckets) : null;
          if (merged) {
            out.set(tail.incarnation_id, merged);
            remember(ck, versions.get(tail.incarnation_id) ?? "", merged);
          } else again.push(tail.incarnation_id);
        }
        if (again.length) {
          seriesStats.fallbacks += again.length;
          await readFull(again);
        }
      })();
    const keys = group.ids.map((id) => cacheKey(id, key, x, stream, buckets));
    for (const ck of keys) inflight.set(ck, read);
    const settle = () => {
      for (const ck of keys) if (inflight.get(ck) === read) inflight.delete(ck);
    };
    read.then(settle, settle);
    requests.push(read);
  }
  await Promise.all(requests);
  if (signal?.aborted) throw aborted();
  while (cache.size > MAX_ENTRIES) {
    const oldest = cache.keys().next().value;
    if (oldest === undefined) break;
    cache.delete(oldest);
  }
  return out;
}
