import { describe, expect, it } from "vitest";
import { barsOf, boxRect, boxesOf, cellText, confusionOf, curvesOf, heatMap, imagesOf, mediaFileUrl, stepsUnion, tableView, valueAt } from "./media";

describe("steps", () => {
  it("unions the steps of runs and finds the value at or before a step", () => {
    const a = { steps: [{ step: 0 }, { step: 4 }, { step: 8 }] };
    const b = { steps: [{ step: 2 }, { step: 4 }] };
    expect(stepsUnion([a, b])).toEqual([0, 2, 4, 8]);
    expect(valueAt(a.steps, 5)).toEqual({ step: 4 });
    expect(valueAt(a.steps, 8)).toEqual({ step: 8 });
    expect(valueAt(b.steps, 1)).toBeNull();
  });
});

describe("descriptors", () => {
  it("lists the images of one image or of a list", () => {
    const one = { _type: "image-file", path: "a.png" };
    expect(imagesOf(one)).toEqual([one]);
    expect(imagesOf({ _type: "images/separated", images: [one, one] })).toHaveLength(2);
    expect(imagesOf({ _type: "histogram" })).toEqual([]);
    const boxes = { pred: { _type: "boxes2D", url: "/b.json" } };
    const masks = { seg: { _type: "mask", url: "/m.png" } };
    const listed = imagesOf({ _type: "images/separated", width: 8, height: 6, images: [one, one], all_boxes: [boxes, null], all_masks: [null, masks] });
    expect(listed.map((i) => [i.boxes, i.masks, i.width, i.height])).toEqual([
      [boxes, undefined, 8, 6],
      [undefined, masks, 8, 6],
    ]);
    expect(imagesOf(null)).toEqual([]);
  });
  it("builds media file URLs with each path part encoded", () => {
    expect(mediaFileUrl("inc 1", "media/images/a b#.png")).toBe("/api/v1/media/files/inc%201/media/images/a%20b%23.png");
  });
  it("places boxes as fractions, from corners, a middle and a size, or pixels", () => {
    const corners = boxRect({ position: { minX: 0.1, maxX: 0.5, minY: 0.2, maxY: 0.6 }, class_id: 1 }, 100, 50, { "1": "cat" });
    expect(corners).toMatchObject({ x: 0.1, y: 0.2, w: 0.4, label: "cat", classId: 1 });
    expect(corners?.h).toBeCloseTo(0.4, 9);
    const pixel = boxRect({ position: { middle: [50, 25], width: 20, height: 10 }, domain: "pixel", box_caption: "x" }, 100, 50);
    expect(pixel?.label).toBe("x");
    for (const [got, want] of [[pixel?.x, 0.4], [pixel?.y, 0.4], [pixel?.w, 0.2], [pixel?.h, 0.2]] as const) expect(got).toBeCloseTo(want, 9);
    expect(boxRect({}, 1, 1)).toBeNull();
    const value = { _type: "image-file", width: 10, height: 10, boxes: { pred: { box_data: [{ position: { minX: 0, maxX: 1, minY: 0, maxY: 1 } }] } } };
    expect(boxesOf(value).map((b) => b.group)).toEqual(["pred"]);
  });
});

describe("tables", () => {
  const columns = ["id", "label", "pic"];
  const rows = [
    [3, "dog", { _type: "image-file", caption: "spot" }],
    [1, "cat", null],
    [2, "bird", { _type: "image-file" }],
    [10, "cat", null],
  ];
  const query = { filter: "", sort: null, descending: false, page: 0, pageSize: 2 };
  it("pages", () => {
    const view = tableView(columns, rows, query);
    expect(view.total).toBe(4);
    expect(view.pages).toBe(2);
    expect(tableView(columns, rows, { ...query, page: 1 }).rows.map((r) => r[0])).toEqual([2, 10]);
    expect(tableView(columns, rows, { ...query, page: 9 }).rows.map((r) => r[0])).toEqual([2, 10]);
  });
  it("sorts numbers as numbers, both ways", () => {
    expect(tableView(columns, rows, { ...query, sort: 0, pageSize: 10 }).rows.map((r) => r[0])).toEqual([1, 2, 3, 10]);
    expect(tableView(columns, rows, { ...query, sort: 0, descending: true, pageSize: 10 }).rows.map((r) => r[0])).toEqual([10, 3, 2, 1]);
    expect(tableView(columns, rows, { ...query, sort: 1, pageSize: 10 }).rows.map((r) => r[1])).toEqual(["bird", "cat", "cat", "dog"]);
  });
  it("filters on any cell or on one column", () => {
    expect(tableView(columns, rows, { ...query, filter: "CAT", pageSize: 10 }).total).toBe(2);
    expect(tableView(columns, rows, { ...query, filter: "spot", pageSize: 10 }).rows[0]?.[0]).toBe(3);
    expect(tableView(columns, rows, { ...query, filter: "id:1", pageSize: 10 }).rows.map((r) => r[0])).toEqual([1, 10]);
    expect(cellText({ _type: "image-file" })).toBe("image-file");
  });
});

describe("histograms", () => {
  it("spreads each step's bins over one grid, scaled to the step's largest row", () => {
    const map = heatMap(
      [
        { step: 0, value: { values: [4, 0], bins: [0, 1, 2] } },
        { step: 1, value: { values: [1, 3], bins: [2, 3, 4] } },
      ],
      4,
    );
    expect(map.lo).toBe(0);
    expect(map.hi).toBe(4);
    expect(map.steps).toEqual([0, 1]);
    expect(map.cells[0]).toEqual([1, 0, 0, 0]);
    expect(map.cells[1]).toEqual([0, 0, 1 / 3, 1]);
  });
  it("handles no histograms and a single value", () => {
    expect(heatMap([]).cells).toEqual([]);
    const flat = heatMap([{ step: 0, value: { values: [5], bins: [2, 2] } }], 2);
    expect(flat.lo).toBeLessThan(2);
    expect(flat.cells[0]?.reduce((a, b) => a + b, 0)).toBe(1);
  });
});

describe("chart presets", () => {
  it("builds a confusion matrix from (actual, predicted, count) rows", () => {
    const data = [["cat", "cat", 5], ["cat", "dog", 1], ["dog", "cat", 2], ["dog", "dog", 7]];
    const m = confusionOf(["Actual", "Predicted", "nPredictions"], data, {});
    expect(m.actual).toEqual(["cat", "dog"]);
    expect(m.counts).toEqual([[5, 1], [2, 7]]);
    expect(m.max).toBe(7);
  });
  it("splits curves by class and sorts line points by x", () => {
    const data = [["a", 0.5, 0.9], ["a", 0.1, 1], ["b", 0.2, 0.3], ["a", "x", 1]];
    const curves = curvesOf(["class", "recall", "precision"], data, { preset: "pr_curve", fields: { x: "recall", y: "precision", class: "class" } });
    expect(curves.map((c) => c.name)).toEqual(["a", "b"]);
    expect(curves[0]).toEqual({ name: "a", x: [0.1, 0.5], y: [1, 0.9] });
    const series = curvesOf(["lineKey", "lineVal", "step"], [["l1", 3, 1], ["l1", 2, 0]], { preset: "line_series", fields: {} });
    expect(series).toEqual([{ name: "l1", x: [0, 1], y: [2, 3] }]);
  });
  it("draws bars and bins a histogram preset", () => {
    expect(barsOf(["k", "v"], [["a", 2], ["b", "3"]], { preset: "bar", fields: { label: "k", value: "v" } })).toEqual([
      { label: "a", value: 2 },
      { label: "b", value: 3 },
    ]);
    const bins = barsOf(["v"], [[0], [1], [1], [2]], { preset: "histogram", fields: { value: "v" } }, 2);
    expect(bins.map((b) => b.value)).toEqual([1, 3]);
  });
});
