import { describe, expect, it } from "vitest";
import { canonical, compareDocs, comparePath, parseRunIds, valuesDiffer } from "./compare";

describe("compare", () => {
  it("flattens nested keys into one row each, sorted, with a value per run", () => {
    const rows = compareDocs([
      { lr: 0.1, model: { arch: "vit", layers: 12 } },
      { lr: 0.1, model: { arch: "resnet", layers: 12 }, seed: 3 },
    ]);
    expect(rows.map((r) => r.key)).toEqual(["lr", "model.arch", "model.layers", "seed"]);
    expect(rows.find((r) => r.key === "model.arch")).toEqual({ key: "model.arch", values: ["vit", "resnet"], differs: true });
    expect(rows.find((r) => r.key === "lr")?.differs).toBe(false);
    expect(rows.find((r) => r.key === "model.layers")?.differs).toBe(false);
  });

  it("counts a key one run lacks as a difference", () => {
    const rows = compareDocs([{ a: 1 }, {}]);
    expect(rows).toEqual([{ key: "a", values: [1, undefined], differs: true }]);
  });

  it("compares lists and objects by content, not identity or key order", () => {
    expect(valuesDiffer([[1, 2], [1, 2]])).toBe(false);
    expect(valuesDiffer([[1, 2], [2, 1]])).toBe(true);
    expect(valuesDiffer([{ _type: "table", a: 1, b: 2 }, { b: 2, a: 1, _type: "table" }])).toBe(false);
    expect(canonical(Number.NaN)).toBe(canonical(Number.NaN));
    expect(valuesDiffer([null, undefined])).toBe(true);
    expect(valuesDiffer([1, "1"])).toBe(true);
  });

  it("keeps the documents' own order when asked", () => {
    expect(compareDocs([{ b: 1, a: 2 }], false).map((r) => r.key)).toEqual(["b", "a"]);
  });

  it("a single run has no differences", () => {
    expect(compareDocs([{ a: 1 }])[0].differs).toBe(false);
  });

  it("reads run ids from the URL without blanks or repeats", () => {
    expect(parseRunIds("a, b,,a,c")).toEqual(["a", "b", "c"]);
    expect(parseRunIds(null)).toEqual([]);
    expect(comparePath("me", "my proj", ["a", "b"], true)).toBe("/me/my%20proj/compare?runs=a,b&diff=1");
    expect(parseRunIds("a,b")).toEqual(["a", "b"]);
  });
});
