// Filter expressions typed as text — `config.lr > 0.001 and (state = finished or tags IN (a, "b c"))` —
// compiled to the MongoDB-style filter JSON the server evaluates, and printed back from it.

import { fieldKind, operatorOf, typedOperator } from "./filterFields";

export type Mongo = Record<string, unknown>;

type Token =
  | { kind: "word"; text: string; at: number }
  | { kind: "string"; text: string; at: number }
  | { kind: "op"; text: string; at: number }
  | { kind: "punct"; text: "(" | ")" | "," | "[" | "]"; at: number };

export class ExpressionError extends Error {
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(message);
  }
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const ch = source[i];
    if (/\s/.test(ch)) {
      i += 1;
    } else if (ch === '"' || ch === "'") {
      let j = i + 1;
      let text = "";
      while (j < source.length && source[j] !== ch) {
        if (source[j] === "\\" && j + 1 < source.length) j += 1;
        text += source[j];
        j += 1;
      }
      if (j >= source.length) throw new ExpressionError("Unclosed quote", i);
      tokens.push({ kind: "string", text, at: i });
      i = j + 1;
    } else if ("(),[]".includes(ch)) {
      tokens.push({ kind: "punct", text: ch as "(" | ")" | "," | "[" | "]", at: i });
      i += 1;
    } else if ("=!<>≠≤≥".includes(ch)) {
      const two = source.slice(i, i + 2);
      const text = ["==", "!=", "<=", ">="].includes(two) ? two : ch;
      if (text === "!") throw new ExpressionError("Unknown operator '!' (use != or ≠)", i);
      tokens.push({ kind: "op", text, at: i });
      i += text.length;
    } else {
      let j = i;
      while (j < source.length && !/[\s(),[\]=!<>≠≤≥"']/.test(source[j])) j += 1;
      tokens.push({ kind: "word", text: source.slice(i, j), at: i });
      i = j;
    }
  }
  return tokens;
}

function literal(token: Token, field: string): unknown {
  if (token.kind === "string") return token.text;
  if (token.kind !== "word") throw new ExpressionError(`Expected a value, found '${token.text}'`, token.at);
  const text = token.text;
  if (text.toLowerCase() === "null") return null;
  if (fieldKind(field) === "text" || ISO_DATE.test(text)) return text;
  if (text === "true") return true;
  if (text === "false") return false;
  if (Number.isFinite(Number(text))) return Number(text);
  return text;
}

/** Parse an expression into a MongoDB-style filter; an empty expression is null (no filter). */
export function parseExpression(source: string): Mongo | null {
  const tokens = tokenize(source);
  if (!tokens.length) return null;
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const isWord = (token: Token | undefined, word: string) => token?.kind === "word" && token.text.toLowerCase() === word;
  const end = source.length;

  const orExpr = (): Mongo => {
    const parts = [andExpr()];
    while (isWord(peek(), "or")) {
      pos += 1;
      parts.push(andExpr());
    }
    return parts.length === 1 ? parts[0] : { $or: parts };
  };
  const andExpr = (): Mongo => {
    const parts = [atom()];
    while (isWord(peek(), "and")) {
      pos += 1;
      parts.push(atom());
    }
    return parts.length === 1 ? parts[0] : { $and: parts };
  };
  const atom = (): Mongo => {
    const token = peek();
    if (!token) throw new ExpressionError("Expected a condition", end);
    if (token.kind === "punct" && token.text === "(") {
      pos += 1;
      const inner = orExpr();
      const close = peek();
      if (!close || close.kind !== "punct" || close.text !== ")") throw new ExpressionError("Expected ')'", close?.at ?? end);
      pos += 1;
      return inner;
    }
    return condition();
  };
  const condition = (): Mongo => {
    const head = peek();
    if (!head || (head.kind !== "word" && head.kind !== "string")) throw new ExpressionError("Expected a column name", head?.at ?? end);
    if (head.kind === "word" && ["and", "or", "in", "not"].includes(head.text.toLowerCase())) {
      throw new ExpressionError(`Expected a column name, found '${head.text}'`, head.at);
    }
    const field = head.text;
    pos += 1;
    let opToken = peek();
    if (!opToken) throw new ExpressionError(`Expected an operator after ${field}`, end);
    let op: string;
    if (opToken.kind === "op") {
      op = opToken.text;
      pos += 1;
    } else if (isWord(opToken, "in")) {
      op = "IN";
      pos += 1;
    } else if (isWord(opToken, "not") && isWord(tokens[pos + 1], "in")) {
      op = "NOT IN";
      pos += 2;
    } else {
      throw new ExpressionError(`Expected an operator (= ≠ < ≤ > ≥ IN NOT IN) after ${field}`, opToken.at);
    }
    const spec = typedOperator(op);
    if (!spec) throw new ExpressionError(`Unknown operator '${op}'`, opToken.at);
    const mongo = spec.mongo;
    if (spec.list) {
      opToken = peek();
      if (!opToken || opToken.kind !== "punct" || (opToken.text !== "(" && opToken.text !== "[")) {
        throw new ExpressionError(`Expected '(' with a list after ${op}`, opToken?.at ?? end);
      }
      const closer = opToken.text === "(" ? ")" : "]";
      pos += 1;
      const values: unknown[] = [];
      for (;;) {
        const item = peek();
        if (!item) throw new ExpressionError(`Expected '${closer}'`, end);
        if (item.kind === "punct" && item.text === closer) {
          pos += 1;
          break;
        }
        values.push(literal(item, field));
        pos += 1;
        const sep = peek();
        if (sep?.kind === "punct" && sep.text === ",") pos += 1;
        else if (!(sep?.kind === "punct" && sep.text === closer)) throw new ExpressionError(`Expected ',' or '${closer}'`, sep?.at ?? end);
      }
      return { [field]: { [mongo]: values } };
    }
    const valueToken = peek();
    if (!valueToken) throw new ExpressionError(`Expected a value after ${field} ${op}`, end);
    pos += 1;
    return { [field]: { [mongo]: literal(valueToken, field) } };
  };

  const doc = orExpr();
  const rest = peek();
  if (rest) throw new ExpressionError(`Unexpected '${rest.text}' (join conditions with and / or)`, rest.at);
  return doc;
}

function printValue(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  const text = String(value);
  return /^[A-Za-z_][\w.\-:/]*$/.test(text) && !["and", "or", "null", "true", "false", "in", "not"].includes(text.toLowerCase())
    ? text
    : JSON.stringify(text);
}

/** Print a filter back as an expression, or null when it uses something expressions cannot say. */
export function printExpression(doc: unknown, nested = false): string | null {
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) return null;
  const entries = Object.entries(doc as Mongo);
  if (!entries.length) return "";
  const parts: string[] = [];
  for (const [key, spec] of entries) {
    if (key === "$and" || key === "$or") {
      if (!Array.isArray(spec) || !spec.length) return null;
      const inner = spec.map((item) => printExpression(item, true));
      if (inner.some((p) => p === null)) return null;
      const joined = inner.join(key === "$and" ? " and " : " or ");
      parts.push(nested && (key === "$or" || entries.length > 1) ? `(${joined})` : joined);
      continue;
    }
    if (key.startsWith("$")) return null;
    const field = /^[\w.\-:/]+$/.test(key) ? key : JSON.stringify(key);
    if (spec && typeof spec === "object" && !Array.isArray(spec)) {
      for (const [op, value] of Object.entries(spec as Mongo)) {
        const known = operatorOf(op);
        if (!known || !known.typed.length) return null;
        const shown = known.label;
        if (known.list) {
          if (!Array.isArray(value)) return null;
          parts.push(`${field} ${shown} (${value.map(printValue).join(", ")})`);
        } else parts.push(`${field} ${shown} ${printValue(value)}`);
      }
    } else parts.push(`${field} = ${printValue(spec)}`);
  }
  const joined = parts.join(" and ");
  return nested && parts.length > 1 ? `(${joined})` : joined;
}

/** The word being typed at `caret` (for column completion), with where it starts. */
export function wordAt(source: string, caret: number): { word: string; start: number } {
  let start = caret;
  while (start > 0 && !/[\s(),[\]=!<>≠≤≥"']/.test(source[start - 1])) start -= 1;
  return { word: source.slice(start, caret), start };
}
