import { describe, expect, it } from "vitest";
import { parseAnsi, stripAnsi } from "./ansi";

describe("ansi", () => {
  it("strips escape sequences", () => {
    expect(stripAnsi("\x1b[1;31merror\x1b[0m: done\x1b[K")).toBe("error: done");
  });

  it("turns SGR codes into styled segments", () => {
    expect(parseAnsi("plain \x1b[1;32mok\x1b[22m still green\x1b[0m end")).toEqual([
      { text: "plain " },
      { text: "ok", bold: true, fg: "#3a9a3a" },
      { text: " still green", bold: false, dim: false, fg: "#3a9a3a" },
      { text: " end" },
    ]);
  });

  it("reads 256-colour and true-colour codes", () => {
    expect(parseAnsi("\x1b[38;5;196mred")).toEqual([{ text: "red", fg: "rgb(255,0,0)" }]);
    expect(parseAnsi("\x1b[48;2;1;2;3mbg")).toEqual([{ text: "bg", bg: "rgb(1,2,3)" }]);
    expect(parseAnsi("\x1b[38;5;244mgrey")).toEqual([{ text: "grey", fg: "rgb(128,128,128)" }]);
  });
});
