import { beforeEach, describe, expect, it } from "vitest";
import {
  PALETTE,
  assignColors,
  groupColors,
  parseColors,
  pickRunColor,
  presetColor,
  runColor,
  runColors,
  serializeColors,
  setColorStore,
  withAlpha,
} from "./colors";

function lab(hex: string): [number, number, number] {
  const lin = (i: number) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const [r, g, b] = [lin(1), lin(3), lin(5)];
  const f = (t: number) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);
  const x = f((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047);
  const y = f(0.2126 * r + 0.7152 * g + 0.0722 * b);
  const z = f((0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883);
  return [116 * y - 16, 500 * (x - y), 200 * (y - z)];
}

const runs = (n: number, prefix = "run") => Array.from({ length: n }, (_, i) => ({ run_id: `${prefix}-${i}`, created_at: 1000 + i }));

beforeEach(() => {
  const data = new Map<string, string>();
  setColorStore({ get: (k) => data.get(k) ?? null, set: (k, v) => void data.set(k, v) });
});

describe("colors", () => {
  it("has no near-duplicate pair in the palette", () => {
    expect(new Set(PALETTE).size).toBe(PALETTE.length);
    for (let i = 0; i < PALETTE.length; i += 1) {
      for (let j = i + 1; j < PALETTE.length; j += 1) {
        const [a, b] = [lab(PALETTE[i]), lab(PALETTE[j])];
        const distance = Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
        expect(distance, `${PALETTE[i]} vs ${PALETTE[j]}`).toBeGreaterThan(25);
      }
    }
  });

  it("gives a run the same preset every time", () => {
    expect(presetColor("run-1")).toBe(presetColor("run-1"));
    expect(PALETTE).toContain(presetColor("abc"));
  });

  it("assigns distinct colours while the palette lasts", () => {
    const ids = Array.from({ length: PALETTE.length }, (_, i) => `run-${i}`);
    const colors = assignColors(ids);
    expect(new Set(colors.values()).size).toBe(PALETTE.length);
    expect(colors.get("run-0")).toBe(presetColor("run-0")); // the first keeps its preset
  });

  it("gives the shown runs distinct colours, whatever their presets", () => {
    for (const size of [2, 10, 20]) {
      const colors = runColors(`e/p${size}`, runs(size));
      expect(new Set(colors.values()).size).toBe(size);
    }
  });

  it("keeps a run's colour in every later view: a search, a filter, its run page", () => {
    const all = runs(10);
    const first = runColors("e/p", all);
    // A search showing three of them, in another order, and a run page showing one.
    const search = runColors("e/p", [all[7], all[2], all[9]]);
    expect(search.get("run-7")).toBe(first.get("run-7"));
    expect(search.get("run-2")).toBe(first.get("run-2"));
    expect(runColor("e/p", all[4])).toBe(first.get("run-4"));
    // A run page opened first remembers its colour for the workspace opened after it.
    const page = runColor("e/q", all[5]);
    expect(runColors("e/q", all).get("run-5")).toBe(page);
    expect(new Set(runColors("e/q", all).values()).size).toBe(10);
  });

  it("gives a new run a colour no shown run has", () => {
    const before = runColors("e/p", runs(9));
    const after = runColors("e/p", runs(10));
    for (const [id, color] of before) expect(after.get(id)).toBe(color);
    expect(new Set(after.values()).size).toBe(10);
  });

  it("lets the user's pick win everywhere, and the URL's pick win in its view", () => {
    const all = runs(3);
    runColors("e/p", all);
    pickRunColor("e/p", "run-1", "#123456");
    expect(runColor("e/p", all[1])).toBe("#123456");
    expect(runColors("e/p", all, new Map([["run-1", "#abcdef"]])).get("run-1")).toBe("#abcdef");
    pickRunColor("e/p", "run-1", null);
    expect(runColor("e/p", all[1])).not.toBe("#123456");
  });

  it("keeps projects apart", () => {
    pickRunColor("e/a", "run-0", "#111111");
    expect(runColor("e/b", runs(1)[0])).not.toBe("#111111");
  });

  it("gives groups distinct colours in order", () => {
    const colors = groupColors(["a", "b", "c"]);
    expect([...colors.values()]).toEqual(PALETTE.slice(0, 3));
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
