import { describe, expect, it } from "vitest";
import { PALETTE, assignColors, parseColors, presetColor, serializeColors, withAlpha } from "./colors";

describe("colors", () => {
  it("gives a run the same preset every time", () => {
    expect(presetColor("run-1")).toBe(presetColor("run-1"));
    expect(PALETTE).toContain(presetColor("abc"));
  });

  it("assigns distinct colours while the palette lasts", () => {
    const ids = Array.from({ length: PALETTE.length }, (_, i) => `run-${i}`);
    const colors = assignColors(ids);
    expect(new Set(colors.values()).size).toBe(PALETTE.length);
    expect(colors.get("run-0")).toBe(presetColor("run-0")); // the first keeps its preset
    expect(assignColors([...ids, "one-more"]).size).toBe(ids.length + 1);
  });

  it("round-trips the URL parameter and ignores malformed parts", () => {
    const parsed = parseColors("a:FF0000,b:00ff00,bad,c:xyz");
    expect([...parsed.entries()]).toEqual([
      ["a", "#ff0000"],
      ["b", "#00ff00"],
    ]);
    expect(serializeColors(parsed)).toBe("a:ff0000,b:00ff00");
    expect(parseColors(null).size).toBe(0);
  });

  it("adds transparency", () => {
    expect(withAlpha("#102030", 0.5)).toBe("rgba(16, 32, 48, 0.5)");
  });
});
