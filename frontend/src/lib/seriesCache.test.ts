import { beforeEach, describe, expect, it, vi } from "vitest";
import type { Series } from "../api";

const calls: { incarnations: string[]; min_step?: number | null }[] = [];
// The server, for the cache: every run logs `loss` at steps 0..last[run] (y = step / 10).
const last = new Map<string, number>();

vi.mock("../api", () => ({
  api: {
    series: async (body: { incarnations: string[]; min_step?: number | null; buckets: number }) => {
      calls.push({ incarnations: body.incarnations, min_step: body.min_step });
      return {
        x: "_step",
        stream: 0,
        buckets: body.buckets,
        series: body.incarnations.map((id) => {
          const steps: number[] = [];
          for (let s = body.min_step ?? 0; s <= (last.get(id) ?? -1); s += 1) steps.push(s);
          const sampled = steps.length > 2 * body.buckets;
          const kept = sampled ? steps.filter((_, i) => i % Math.ceil(steps.length / (2 * body.buckets)) === 0 || i === steps.length - 1) : steps;
          return { incarnation_id: id, key: "loss", x: kept, y: kept.map((s) => s / 10), count: steps.length, sampled, last_step: steps.length ? steps[steps.length - 1] : -1 };
        }),
      };
    },
  },
}));

const { loadSeries, mergeTail, seriesStats } = await import("./seriesCache");

function series(x: number[], extra: Partial<Series> = {}): Series {
  return { incarnation_id: "a", key: "loss", x, y: x.map((v) => v / 10), count: x.length, sampled: false, last_step: x.length ? x[x.length - 1] : -1, ...extra };
}

beforeEach(() => {
  calls.length = 0;
});

describe("mergeTail", () => {
  it("appends the new points of a complete series and drops what a shared read repeats", () => {
    const merged = mergeTail(series([0, 1, 2]), series([1, 2, 3, 4]), "_step", 100);
    expect(merged?.x).toEqual([0, 1, 2, 3, 4]);
    expect(merged?.y).toEqual([0, 0.1, 0.2, 0.3, 0.4]);
    expect(merged?.count).toBe(5);
    expect(merged?.sampled).toBe(false);
    expect(merged?.last_step).toBe(4);
  });

  it("asks for a full read once a full read would downsample", () => {
    expect(mergeTail(series([0, 1, 2]), series([3, 4]), "_step", 2)).toBeNull(); // 5 > 2 * 2
    expect(mergeTail(series([0, 1]), series([2, 9], { sampled: true, count: 8 }), "_step", 100)).toBeNull();
  });

  it("extends a downsampled series until it holds twice a full read's points", () => {
    const head = series([0, 50, 100], { sampled: true, count: 101 });
    const merged = mergeTail(head, series([101, 102]), "_step", 2);
    expect(merged?.x).toEqual([0, 50, 100, 101, 102]);
    expect(merged?.sampled).toBe(true);
    expect(merged?.count).toBe(103);
    expect(mergeTail(head, series([101, 102, 103, 104, 105, 106, 107, 108, 109, 110]), "_step", 2)).toBeNull();
    expect(mergeTail(head, series([101]), "_runtime", 2)).toBeNull();
  });

  it("extends another axis only where it continues", () => {
    expect(mergeTail(series([0, 1]), series([2]), "_runtime", 100)?.x).toEqual([0, 1, 2]);
    expect(mergeTail(series([0, 5]), series([1]), "_runtime", 100)).toBeNull();
  });
});

describe("loadSeries", () => {
  it("reads only new points of a live run, then falls back to a full read when the reduction changes", async () => {
    last.set("r1", 9);
    last.set("r2", 11);
    let got = await loadSeries([{ incarnation: "r1", version: "9" }, { incarnation: "r2", version: "11" }], "loss", "_step", 0, 20);
    expect(calls).toEqual([{ incarnations: ["r1", "r2"], min_step: undefined }]);
    expect(got.get("r1")?.x.length).toBe(10);

    // Both logged more: one shared incremental read from the earliest new step.
    last.set("r1", 14);
    last.set("r2", 15);
    calls.length = 0;
    got = await loadSeries([{ incarnation: "r1", version: "14" }, { incarnation: "r2", version: "15" }], "loss", "_step", 0, 20);
    expect(calls).toEqual([{ incarnations: ["r1", "r2"], min_step: 10 }]);
    expect(got.get("r1")?.x).toEqual(Array.from({ length: 15 }, (_, i) => i));
    expect(got.get("r2")?.x).toEqual(Array.from({ length: 16 }, (_, i) => i));

    // Unchanged: nothing is read.
    calls.length = 0;
    await loadSeries([{ incarnation: "r1", version: "14" }], "loss", "_step", 0, 20);
    expect(calls).toEqual([]);

    // r1 grows past 2 × buckets: a full read would downsample, so it is read in full.
    last.set("r1", 60);
    const before = seriesStats.fallbacks;
    got = await loadSeries([{ incarnation: "r1", version: "60" }], "loss", "_step", 0, 20);
    expect(calls).toEqual([{ incarnations: ["r1"], min_step: 15 }, { incarnations: ["r1"], min_step: undefined }]);
    expect(seriesStats.fallbacks).toBe(before + 1);
    expect(got.get("r1")?.sampled).toBe(true);
  });

  it("lets an abandoned incremental read land in the cache for the next call", async () => {
    last.set("r3", 5);
    await loadSeries([{ incarnation: "r3", version: "5" }], "loss", "_step", 0, 20);
    last.set("r3", 8);
    calls.length = 0;
    const controller = new AbortController();
    const first = loadSeries([{ incarnation: "r3", version: "8" }], "loss", "_step", 0, 20, controller.signal);
    controller.abort();
    await expect(first).rejects.toThrow();
    const got = await loadSeries([{ incarnation: "r3", version: "8" }], "loss", "_step", 0, 20);
    expect(calls).toEqual([{ incarnations: ["r3"], min_step: 6 }]);
    expect(got.get("r3")?.x).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
