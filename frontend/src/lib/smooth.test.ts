import { describe, expect, it } from "vitest";
import { ema } from "./smooth";

describe("ema", () => {
  it("returns the values unchanged at weight 0", () => {
    const values = [1, 2, 3];
    expect(ema(values, 0)).toBe(values);
  });

  it("is debiased: a constant series stays constant from its first point", () => {
    for (const value of ema([5, 5, 5, 5], 0.9)) expect(value).toBeCloseTo(5, 12);
  });

  it("smooths towards the recent values and keeps gaps", () => {
    const out = ema([0, null, 10, Number.NaN, 10], 0.5);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeNull();
    expect(out[2]).toBeCloseTo(10 * 0.5 / 0.75, 12);
    expect(out[3]).toBeNull();
    expect(out[4] as number).toBeGreaterThan(out[2] as number);
    expect(out[4] as number).toBeLessThan(10);
  });
});
