import type uPlot from "uplot";
import { describe, expect, it } from "vitest";
import { alignTables } from "./align";

describe("alignTables", () => {
  it("joins small tables exactly", () => {
    const out = alignTables([
      [[1, 2, 3], [10, 20, 30]],
      [[2, 4], [5, 6]],
    ] as uPlot.AlignedData[]);
    expect(out[0]).toEqual([1, 2, 3, 4]);
    expect(out[1]).toEqual([10, 20, 30, undefined]);
    expect(out[2]).toEqual([undefined, 5, undefined, 6]);
  });

  it("keeps every run's extremes, in order, and its gaps on the grid", () => {
    const xs = Array.from({ length: 3000 }, (_, i) => i);
    const ys: (number | null)[] = xs.map((i) => Math.sin(i / 50));
    ys[1234] = 50;
    ys[2345] = -50;
    ys[2000] = null;
    const out = alignTables([[xs, ys] as uPlot.AlignedData], 100);
    expect(out[0].length).toBe(300); // three slots per column
    const drawn = out[1] as (number | null | undefined)[];
    const values = drawn.filter((v): v is number => typeof v === "number");
    expect(Math.max(...values)).toBe(50);
    expect(Math.min(...values)).toBe(-50);
    expect(drawn.indexOf(50)).toBeLessThan(drawn.indexOf(-50));
    expect(drawn).toContain(null);
    const grid = out[0] as number[];
    for (let i = 1; i < grid.length; i += 1) expect(grid[i]).toBeGreaterThan(grid[i - 1]);
  });
});
