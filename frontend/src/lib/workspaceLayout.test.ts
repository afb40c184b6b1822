import { describe, expect, it } from "vitest";
import {
  type KeyKind,
  type Layout,
  addPanel,
  addSection,
  autoLayout,
  forSaving,
  movePanel,
  normalizePanel,
  parseLayout,
  removePanel,
  removeSection,
  resizePanel,
  updatePanel,
  withNewKeys,
} from "./workspaceLayout";

const num: KeyKind = { numeric: true, media: null };
const section = (key: string) => (key.lastIndexOf("/") > 0 ? key.slice(0, key.lastIndexOf("/")) : "Charts");
const KEYS: Record<string, KeyKind> = {
  _step: num,
  loss: num,
  acc: num,
  "val/loss": num,
  note: { numeric: false, media: null },
  samples: { numeric: false, media: "image" },
};

const ids = (layout: Layout) => layout.sections.map((s) => [s.name, s.panels.map((p) => p.keys.join("+"))]);

describe("autoLayout", () => {
  it("gives each metric and media key a panel, in sections by prefix with Charts first", () => {
    const layout = autoLayout(KEYS, section);
    expect(ids(layout)).toEqual([
      ["Charts", ["acc", "loss", "samples"]],
      ["val", ["val/loss"]],
    ]);
    expect(layout.sections[0].panels.find((p) => p.keys[0] === "samples")?.kind).toBe("media");
    // Stable ids: the same keys give the same layout.
    expect(autoLayout(KEYS, section)).toEqual(layout);
  });
});

describe("edits", () => {
  const base = autoLayout(KEYS, section);
  const charts = base.sections[0];
  const val = base.sections[1];

  it("adds, updates, resizes and removes panels", () => {
    let layout = addPanel(base, val.id, { id: "multi", kind: "line", keys: ["loss", "acc"], w: 2, h: 1 });
    expect(ids(layout)[1]).toEqual(["val", ["val/loss", "loss+acc"]]);
    layout = updatePanel(layout, "multi", { smoothing: 2, log_y: true, max_runs: 0 });
    const multi = layout.sections[1].panels[1];
    expect([multi.smoothing, multi.log_y, multi.max_runs]).toEqual([0.99, true, 1]);
    layout = resizePanel(layout, "multi", 9, 0);
    expect([layout.sections[1].panels[1].w, layout.sections[1].panels[1].h]).toEqual([4, 1]);
    layout = removePanel(layout, "multi");
    expect(ids(layout)).toEqual(ids(base));
  });

  it("moves a panel within and across sections", () => {
    const [acc, loss, samples] = charts.panels;
    expect(ids(movePanel(base, acc.id, charts.id, 2))[0]).toEqual(["Charts", ["loss", "acc", "samples"]]);
    expect(ids(movePanel(base, samples.id, charts.id, 0))[0]).toEqual(["Charts", ["samples", "acc", "loss"]]);
    expect(ids(movePanel(base, loss.id, charts.id, -1))[0]).toEqual(["Charts", ["acc", "samples", "loss"]]);
    const across = movePanel(base, loss.id, val.id, 0);
    expect(ids(across)).toEqual([
      ["Charts", ["acc", "samples"]],
      ["val", ["loss", "val/loss"]],
    ]);
    expect(movePanel(base, "nope", val.id, 0)).toBe(base);
  });

  it("adds and removes sections, keeping the panels of a removed one", () => {
    const layout = addSection(base, "Mine");
    expect(layout.sections.map((s) => s.name)).toEqual(["Charts", "val", "Mine"]);
    expect(ids(removeSection(layout, val.id))).toEqual([
      ["Charts", ["acc", "loss", "samples", "val/loss"]],
      ["Mine", []],
    ]);
  });

  it("media panels keep one key", () => {
    expect(normalizePanel({ id: "m", kind: "media", keys: ["a", "b"], w: 1, h: 1 }).keys).toEqual(["a"]);
  });
});

describe("saved layouts and new keys", () => {
  it("marks every known key seen, so a removed panel stays removed but a new key gets a panel", () => {
    const base = autoLayout(KEYS, section);
    const edited = removePanel(base, base.sections[0].panels[0].id); // acc
    const saved = forSaving(edited, Object.keys(KEYS));
    expect(saved.seen_keys).toContain("acc");
    expect(saved.seen_keys).not.toContain("_step");
    expect(withNewKeys(saved, KEYS, section)).toBe(saved);
    const later = withNewKeys(saved, { ...KEYS, "train/lr": num, "val/acc": num }, section);
    expect(ids(later)).toEqual([
      ["Charts", ["loss", "samples"]],
      ["val", ["val/loss", "val/acc"]],
      ["train", ["train/lr"]],
    ]);
  });

  it("parses what the server sends back, dropping what it cannot show", () => {
    const parsed = parseLayout({
      format: 1,
      sections: [
        { id: "s", name: "S", panels: [{ id: "p", kind: "line", keys: ["a"], w: 7, h: 1, x: null }, { id: "q", keys: [] }] },
        { id: 3 },
      ],
      seen_keys: ["a", 4],
    });
    expect(parsed).toEqual({ format: 1, sections: [{ id: "s", name: "S", panels: [{ id: "p", kind: "line", keys: ["a"], w: 4, h: 1, x: null }] }], seen_keys: ["a"] });
    expect(parseLayout(null)).toBeNull();
    expect(parseLayout({ sections: "no" })).toBeNull();
  });
});
