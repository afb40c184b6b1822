import { describe, expect, it } from "vitest";
import type { RunItem } from "../api";
import { columnLabel, columnText, selectorColumns } from "./runColumns";

const run = {
  name: "vit-adam-0",
  state: "finished",
  created_at: 0,
  runtime: 80, // the Runtime column shows runtime (wall clock), not duration (active time)
  duration: 70,
  notes: "first line\nsecond line",
  tags: ["a", "b"],
  group: "",
  job_type: "train",
  config: { lr: 0.001, model: { arch: "vit" } },
  summary: { loss: 0.25 },
} as unknown as RunItem;

describe("run columns", () => {
  it("shows a column's value as text", () => {
    expect(columnText(run, "config:model.arch")).toBe("vit");
    expect(columnText(run, "config:lr")).toBe("0.001");
    expect(columnText(run, "summary:loss")).toBe("0.25");
    expect(columnText(run, "summary:missing")).toBe("–");
    expect(columnText(run, "runtime")).toBe("1m 20s");
    expect(columnText(run, "notes")).toBe("first line");
    expect(columnText(run, "tags")).toBe("a, b");
    expect(columnText(run, "group")).toBe("–");
  });

  it("labels columns by their prefix", () => {
    expect(columnLabel("config:lr")).toBe("config.lr");
    expect(columnLabel("summary:loss")).toBe("summary.loss");
    expect(columnLabel("job_type")).toBe("Job type");
  });

  it("the run selector shows pinned columns that are not hidden, in pin order", () => {
    expect(selectorColumns({ order: [], pinned: ["summary:loss", "name", "config:lr", "state"] }, new Set(["state"]))).toEqual(["summary:loss", "config:lr"]);
  });
});
