import { describe, expect, it } from "vitest";
import { flatten, lookup } from "./flatten";

describe("flatten", () => {
  it("turns nested objects into dot paths, keeping media, arrays and empty objects whole", () => {
    const doc = { a: { b: 1, c: { d: "x" } }, img: { _type: "image", w: 2 }, list: [1, 2], empty: {} };
    expect(flatten(doc)).toEqual([
      ["a.b", 1],
      ["a.c.d", "x"],
      ["img", { _type: "image", w: 2 }],
      ["list", [1, 2]],
      ["empty", {}],
    ]);
  });

  it("stops descending after four levels", () => {
    const deep = { a: { b: { c: { d: { e: { f: 1 } } } } } };
    expect(flatten(deep)).toEqual([["a.b.c.d.e", { f: 1 }]]);
  });
});

describe("lookup", () => {
  it("finds a flat key first, then a nested path", () => {
    expect(lookup({ "a.b": 1, a: { b: 2 } }, "a.b")).toBe(1);
    expect(lookup({ a: { b: { c: 3 } } }, "a.b.c")).toBe(3);
    expect(lookup({ a: [1] }, "a.0")).toBeUndefined();
    expect(lookup({}, "missing")).toBeUndefined();
  });
});
