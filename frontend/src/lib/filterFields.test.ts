import { describe, expect, it } from "vitest";
import { BASE_FIELDS, OPERATORS, fieldKind, operator, operatorOf, typedOperator } from "./filterFields";

describe("the field and operator table", () => {
  it("lists each operator once, with a distinct MongoDB operator", () => {
    expect(new Set(OPERATORS).size).toBe(OPERATORS.length);
    expect(new Set(OPERATORS.map((o) => operator(o).mongo)).size).toBe(OPERATORS.length);
  });

  it("maps labels, MongoDB operators and typed spellings onto the same entry", () => {
    expect(operatorOf("$gte")?.label).toBe("≥");
    expect(typedOperator(">=")).toBe(operatorOf("$gte"));
    expect(typedOperator("!=")?.mongo).toBe("$ne");
    expect(typedOperator("matches")).toBeUndefined(); // the conditions editor only
    expect(operator("IN").list).toBe(true);
  });

  it("knows the base columns' kinds", () => {
    expect(BASE_FIELDS).toContain("display_name");
    expect(fieldKind("state")).toBe("text");
    expect(fieldKind("createdAt")).toBe("date");
    expect(fieldKind("duration")).toBe("number");
    expect(fieldKind("config.lr")).toBeUndefined();
  });
});
