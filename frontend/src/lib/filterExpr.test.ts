import { describe, expect, it } from "vitest";
import { ExpressionError, parseExpression, printExpression, tokenize, wordAt } from "./filterExpr";
import { OPERATOR_TABLE } from "./filterFields";

describe("parseExpression", () => {
  it("compiles and/or with parentheses to MongoDB filters", () => {
    expect(parseExpression('config.lr > 0.001 and (state = finished or tags IN (a, "b c"))')).toEqual({
      $and: [{ "config.lr": { $gt: 0.001 } }, { $or: [{ state: { $eq: "finished" } }, { tags: { $in: ["a", "b c"] } }] }],
    });
  });

  it("reads every spelling of every operator the table lets expressions type", () => {
    for (const op of OPERATOR_TABLE) {
      for (const spelling of op.typed) {
        const source = op.list ? `x ${spelling} (1, 2)` : `x ${spelling} 1`;
        expect(parseExpression(source)).toEqual({ x: { [op.mongo]: op.list ? [1, 2] : 1 } });
      }
    }
  });

  it("keeps text columns and dates as text, numbers and booleans elsewhere", () => {
    expect(parseExpression("state = 404")).toEqual({ state: { $eq: "404" } });
    expect(parseExpression("createdAt > 2024-01-02")).toEqual({ createdAt: { $gt: "2024-01-02" } });
    expect(parseExpression("config.flag = true and summary.n != null")).toEqual({
      $and: [{ "config.flag": { $eq: true } }, { "summary.n": { $ne: null } }],
    });
    expect(parseExpression("x NOT IN [1, two]")).toEqual({ x: { $nin: [1, "two"] } });
  });

  it("is null for an empty expression and reports where an error is", () => {
    expect(parseExpression("   ")).toBeNull();
    expect(() => parseExpression("a = 1 b = 2")).toThrow(ExpressionError);
    try {
      parseExpression("a = 1 and (b = 2");
    } catch (error) {
      expect(error).toBeInstanceOf(ExpressionError);
      expect((error as ExpressionError).at).toBe(16);
    }
    expect(() => parseExpression('name = "open')).toThrow(/Unclosed quote/);
    expect(() => parseExpression("a ! 1")).toThrow(/Unknown operator/);
  });
});

describe("printExpression", () => {
  it("prints what parses back to the same filter", () => {
    for (const source of ["a = 1 and b ≥ 2", "(a < 1 or b IN (x, \"y z\")) and c NOT IN (1, 2)", "name = \"and\""]) {
      const doc = parseExpression(source);
      const printed = printExpression(doc);
      expect(printed).not.toBeNull();
      expect(parseExpression(printed as string)).toEqual(doc);
    }
  });

  it("gives up on what expressions cannot say", () => {
    expect(printExpression({ name: { $regex: "^a" } })).toBeNull();
    expect(printExpression({ $nor: [] })).toBeNull();
    expect(printExpression({})).toBe("");
  });
});

describe("tokenize and wordAt", () => {
  it("splits words, strings, operators and punctuation", () => {
    expect(tokenize('a>=1,"b"').map((t) => [t.kind, t.text])).toEqual([
      ["word", "a"],
      ["op", ">="],
      ["word", "1"],
      ["punct", ","],
      ["string", "b"],
    ]);
  });

  it("finds the word at the caret", () => {
    expect(wordAt("a = 1 and conf", 14)).toEqual({ word: "conf", start: 10 });
    expect(wordAt("(summ", 5)).toEqual({ word: "summ", start: 1 });
  });
});
