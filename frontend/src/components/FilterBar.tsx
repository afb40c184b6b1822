// The filter editor: conditions (column, operator, value) joined by AND or OR, or raw
// MongoDB-style JSON for nesting. The result lives in the URL (`f`) and runs on the server.
import { useEffect, useState } from "preact/hooks";
import { setQuery } from "../router";

export const OPERATORS = ["=", "≠", "<", "≤", ">", "≥", "IN", "NOT IN", "matches"] as const;
type Operator = (typeof OPERATORS)[number];

const MONGO: Record<Operator, string> = {
  "=": "$eq",
  "≠": "$ne",
  "<": "$lt",
  "≤": "$lte",
  ">": "$gt",
  "≥": "$gte",
  IN: "$in",
  "NOT IN": "$nin",
  matches: "$regex",
};

export const TEXT_FIELDS = new Set(["state", "display_name", "name", "tags", "group", "jobType", "host", "username", "notes", "createdAt", "heartbeatAt"]);
export const BASE_FIELDS = ["display_name", "state", "tags", "group", "jobType", "name", "host", "username", "notes", "createdAt", "heartbeatAt", "duration"];

interface Condition {
  field: string;
  op: Operator;
  value: string;
}

function parseValue(field: string, text: string): unknown {
  const trimmed = text.trim();
  if (trimmed === "null") return null;
  if (/^".*"$/.test(trimmed)) return trimmed.slice(1, -1);
  if (TEXT_FIELDS.has(field)) return trimmed;
  if (trimmed === "true") return true;
  if (trimmed === "false") return false;
  if (trimmed !== "" && Number.isFinite(Number(trimmed))) return Number(trimmed);
  return trimmed;
}

function showValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return value.map(showValue).join(", ");
  return String(value);
}

export function toMongo(conditions: Condition[], any: boolean): Record<string, unknown> | null {
  const clauses = conditions
    .filter((c) => c.field.trim())
    .map((c) => {
      const op = MONGO[c.op];
      const value =
        c.op === "IN" || c.op === "NOT IN"
          ? c.value.split(",").map((part) => parseValue(c.field, part)).filter((v) => v !== "")
          : c.op === "matches"
            ? c.value
            : parseValue(c.field, c.value);
      return { [c.field.trim()]: { [op]: value } };
    });
  if (!clauses.length) return null;
  if (clauses.length === 1) return clauses[0];
  return { [any ? "$or" : "$and"]: clauses };
}

function fromMongo(doc: unknown): { conditions: Condition[]; any: boolean } | null {
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) return null;
  const entries = Object.entries(doc as Record<string, unknown>);
  let clauses: unknown[];
  let any = false;
  if (entries.length === 1 && (entries[0][0] === "$and" || entries[0][0] === "$or") && Array.isArray(entries[0][1])) {
    any = entries[0][0] === "$or";
    clauses = entries[0][1] as unknown[];
  } else clauses = entries.map(([k, v]) => ({ [k]: v }));
  const conditions: Condition[] = [];
  for (const clause of clauses) {
    if (!clause || typeof clause !== "object") return null;
    const pairs = Object.entries(clause as Record<string, unknown>);
    if (pairs.length !== 1 || pairs[0][0].startsWith("$")) return null;
    const [field, spec] = pairs[0];
    if (spec && typeof spec === "object" && !Array.isArray(spec)) {
      const ops = Object.entries(spec as Record<string, unknown>);
      if (ops.length !== 1) return null;
      const op = (Object.keys(MONGO) as Operator[]).find((o) => MONGO[o] === ops[0][0]);
      if (!op) return null;
      conditions.push({ field, op, value: showValue(ops[0][1]) });
    } else conditions.push({ field, op: "=", value: showValue(spec) });
  }
  return { conditions, any };
}

export function filterCount(filterJson: string | null): number {
  if (!filterJson) return 0;
  try {
    const parsed = fromMongo(JSON.parse(filterJson));
    return parsed ? parsed.conditions.length : 1;
  } catch {
    return 1;
  }
}

export function FilterEditor({ filterJson, fields, onClose }: { filterJson: string | null; fields: string[]; onClose: () => void }) {
  const [conditions, setConditions] = useState<Condition[]>([]);
  const [any, setAny] = useState(false);
  const [json, setJson] = useState("");
  const [raw, setRaw] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    if (!filterJson) {
      setConditions([{ field: "", op: "=", value: "" }]);
      setJson("");
      setRaw(false);
      return;
    }
    setJson(filterJson);
    try {
      const parsed = fromMongo(JSON.parse(filterJson));
      if (parsed) {
        setConditions(parsed.conditions);
        setAny(parsed.any);
        setRaw(false);
      } else setRaw(true);
    } catch {
      setRaw(true);
    }
  }, [filterJson]);

  const update = (index: number, patch: Partial<Condition>) =>
    setConditions((list) => list.map((c, i) => (i === index ? { ...c, ...patch } : c)));

  const apply = () => {
    if (raw) {
      if (!json.trim()) {
        setQuery({ f: null }, false);
        onClose();
        return;
      }
      try {
        const parsed: unknown = JSON.parse(json);
        if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("the filter must be a JSON object");
        setQuery({ f: JSON.stringify(parsed) }, false);
        onClose();
      } catch (error) {
        setProblem(`Invalid JSON: ${(error as Error).message}`);
      }
      return;
    }
    const doc = toMongo(conditions, any);
    setQuery({ f: doc ? JSON.stringify(doc) : null }, false);
    onClose();
  };

  return (
    <div class="filter-editor" role="region" aria-label="Filters">
      <div class="filter-modes">
        <label class="control-check">
          <input
            type="checkbox"
            checked={raw}
            onChange={(event) => {
              const on = (event.target as HTMLInputElement).checked;
              if (on) setJson(JSON.stringify(toMongo(conditions, any) ?? {}, null, 1));
              setRaw(on);
            }}
          />
          <span>Edit as JSON (MongoDB-style, with $and / $or nesting)</span>
        </label>
      </div>
      {raw ? (
        <label class="field">
          <span class="sr-only">Filter JSON</span>
          <textarea class="input mono" rows={5} value={json} onInput={(event) => setJson((event.target as HTMLTextAreaElement).value)} />
        </label>
      ) : (
        <>
          <datalist id="filter-fields">
            {fields.map((f) => (
              <option key={f} value={f} />
            ))}
          </datalist>
          {conditions.length > 1 && (
            <label class="control">
              <span>Match</span>
              <select class="input input-sm" value={any ? "or" : "and"} onChange={(event) => setAny((event.target as HTMLSelectElement).value === "or")}>
                <option value="and">all conditions (AND)</option>
                <option value="or">any condition (OR)</option>
              </select>
            </label>
          )}
          {conditions.map((condition, index) => (
            <div class="filter-row" key={index}>
              <input
                class="input input-sm"
                list="filter-fields"
                aria-label={`Column of condition ${index + 1}`}
                placeholder="column, e.g. config.lr"
                value={condition.field}
                onInput={(event) => update(index, { field: (event.target as HTMLInputElement).value })}
              />
              <select
                class="input input-sm"
                aria-label={`Operator of condition ${index + 1}`}
                value={condition.op}
                onChange={(event) => update(index, { op: (event.target as HTMLSelectElement).value as Operator })}
              >
                {OPERATORS.map((op) => (
                  <option key={op} value={op}>
                    {op}
                  </option>
                ))}
              </select>
              <input
                class="input input-sm"
                aria-label={`Value of condition ${index + 1}`}
                placeholder={condition.op.includes("IN") ? "a, b, c" : "value (number, text, null)"}
                value={condition.value}
                onInput={(event) => update(index, { value: (event.target as HTMLInputElement).value })}
                onKeyDown={(event) => event.key === "Enter" && apply()}
              />
              <button type="button" class="btn-icon" aria-label={`Remove condition ${index + 1}`} onClick={() => setConditions((list) => list.filter((_, i) => i !== index))}>
                ×
              </button>
            </div>
          ))}
          <button type="button" class="btn btn-xs" onClick={() => setConditions((list) => [...list, { field: "", op: "=", value: "" }])}>
            + Add condition
          </button>
        </>
      )}
      {problem && <p class="error-text">{problem}</p>}
      <div class="filter-actions">
        <button
          type="button"
          class="btn"
          onClick={() => {
            setQuery({ f: null }, false);
            onClose();
          }}
        >
          Clear filters
        </button>
        <button type="button" class="btn btn-primary" onClick={apply}>
          Apply
        </button>
      </div>
    </div>
  );
}
