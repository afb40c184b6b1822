// The filter editor: conditions (column, operator, value) joined by AND or OR, or raw
// MongoDB-style JSON for nesting. The result lives in the URL (`f`) and runs on the server.
import { useEffect, useRef, useState } from "preact/hooks";
import { ExpressionError, parseExpression, printExpression, wordAt } from "../lib/filterExpr";
import { type Operator, OPERATORS, fieldKind, operator, operatorOf } from "../lib/filterFields";
import { setQuery } from "../router";

interface Condition {
  field: string;
  op: Operator;
  value: string;
}

function parseValue(field: string, text: string): unknown {
  const trimmed = text.trim();
  if (trimmed === "null") return null;
  if (/^".*"$/.test(trimmed)) return trimmed.slice(1, -1);
  // Dates are sent as typed: the server reads ISO dates and epoch seconds alike.
  if (fieldKind(field) === "text" || fieldKind(field) === "date") return trimmed;
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
      const spec = operator(c.op);
      const op = spec.mongo;
      const value = spec.list
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
      const op = operatorOf(ops[0][0]);
      if (!op) return null;
      conditions.push({ field, op: op.label, value: showValue(ops[0][1]) });
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

type Mode = "conditions" | "expression" | "json";

function compileExpression(text: string): { doc: Record<string, unknown> | null; error: string | null } {
  try {
    return { doc: parseExpression(text), error: null };
  } catch (error) {
    if (error instanceof ExpressionError) return { doc: null, error: `${error.message} (at character ${error.at + 1})` };
    return { doc: null, error: String(error) };
  }
}

/** A text box for `and` / `or` / parentheses expressions, completing column names as you type. */
function ExpressionInput({ value, fields, onChange, onApply }: { value: string; fields: string[]; onChange: (text: string) => void; onApply: () => void }) {
  const box = useRef<HTMLTextAreaElement>(null);
  const [caret, setCaret] = useState(value.length);
  const [active, setActive] = useState(0);
  const [dismissed, setDismissed] = useState(false);
  const { word, start } = wordAt(value, caret);
  const needle = word.toLowerCase();
  const suggestions =
    !dismissed && needle.length > 0
      ? fields.filter((f) => f.toLowerCase().includes(needle) && f.toLowerCase() !== needle).sort((a, b) => Number(!a.toLowerCase().startsWith(needle)) - Number(!b.toLowerCase().startsWith(needle))).slice(0, 8)
      : [];
  const compiled = compileExpression(value);
  const accept = (field: string) => {
    const next = `${value.slice(0, start)}${field} ${value.slice(caret)}`;
    onChange(next);
    const at = start + field.length + 1;
    // Text and caret go in place now, not on a later frame: by then the user may have typed on,
    // and moving the caret back would put their next keys before what they had just typed.
    const el = box.current;
    if (el) {
      el.value = next;
      el.focus();
      el.setSelectionRange(at, at);
    }
    onChange(next);
    setCaret(at);
    setDismissed(true);
  };
  return (
    <div class="expr">
      <label class="field">
        <span class="sr-only">Filter expression</span>
        <textarea
          ref={box}
          class="input mono"
          rows={2}
          role="combobox"
          aria-autocomplete="list"
          aria-expanded={suggestions.length > 0}
          aria-controls="expr-suggestions"
          aria-activedescendant={suggestions.length ? `expr-option-${active}` : undefined}
          placeholder={'config.lr > 0.001 and (state = finished or tags IN (baseline, "big run"))'}
          value={value}
          onInput={(event) => {
            const target = event.target as HTMLTextAreaElement;
            onChange(target.value);
            setCaret(target.selectionStart ?? target.value.length);
            setActive(0);
            setDismissed(false);
          }}
          onClick={(event) => setCaret((event.target as HTMLTextAreaElement).selectionStart ?? 0)}
          onKeyUp={(event) => {
            if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) setCaret((event.target as HTMLTextAreaElement).selectionStart ?? 0);
          }}
          onKeyDown={(event) => {
            if (suggestions.length) {
              if (event.key === "ArrowDown" || event.key === "ArrowUp") {
                event.preventDefault();
                setActive((i) => (i + (event.key === "ArrowDown" ? 1 : suggestions.length - 1)) % suggestions.length);
                return;
              }
              if (event.key === "Tab" || event.key === "Enter") {
                event.preventDefault();
                accept(suggestions[Math.min(active, suggestions.length - 1)]);
                return;
              }
              if (event.key === "Escape") {
                event.preventDefault();
                event.stopPropagation();
                setDismissed(true);
                return;
              }
            }
            if (event.key === "Enter") {
              event.preventDefault();
              onApply();
            }
          }}
        />
      </label>
      {suggestions.length > 0 && (
        <ul class="expr-suggestions" id="expr-suggestions" role="listbox" aria-label="Columns">
          {suggestions.map((field, index) => (
            <li
              key={field}
              id={`expr-option-${index}`}
              role="option"
              aria-selected={index === active}
              class={index === active ? "active" : ""}
              onMouseDown={(event) => {
                event.preventDefault();
                accept(field);
              }}
            >
              {field}
            </li>
          ))}
        </ul>
      )}
      <p class={compiled.error ? "error-text expr-status" : "muted expr-status"} data-testid="expr-status" aria-live="polite">
        {compiled.error ?? (compiled.doc ? `Compiles to ${JSON.stringify(compiled.doc)}` : "No filter: every run matches.")}
      </p>
    </div>
  );
}

export function FilterEditor({ filterJson, fields, onClose }: { filterJson: string | null; fields: string[]; onClose: () => void }) {
  const [conditions, setConditions] = useState<Condition[]>([]);
  const [any, setAny] = useState(false);
  const [json, setJson] = useState("");
  const [expression, setExpression] = useState("");
  const [mode, setMode] = useState<Mode>("conditions");
  const raw = mode === "json";
  const [problem, setProblem] = useState<string | null>(null);

  useEffect(() => {
    if (!filterJson) {
      setConditions([{ field: "", op: "=", value: "" }]);
      setJson("");
      setExpression("");
      setMode((m) => (m === "json" ? "conditions" : m));
      return;
    }
    setJson(filterJson);
    try {
      const doc: unknown = JSON.parse(filterJson);
      const printed = printExpression(doc);
      setExpression(printed ?? "");
      const parsed = fromMongo(doc);
      if (parsed) {
        setConditions(parsed.conditions);
        setAny(parsed.any);
        setMode((m) => (m === "json" ? "conditions" : m));
      } else setMode(printed !== null ? "expression" : "json");
    } catch {
      setMode("json");
    }
  }, [filterJson]);

  const switchMode = (next: Mode) => {
    setProblem(null);
    const current = mode === "conditions" ? toMongo(conditions, any) : mode === "expression" ? compileExpression(expression).doc : null;
    if (next === "json" && mode !== "json") setJson(JSON.stringify(current ?? {}, null, 1));
    if (next === "expression" && mode === "conditions") setExpression(printExpression(current ?? {}) ?? "");
    if (next === "conditions" && mode === "expression") {
      const parsed = fromMongo(current ?? {});
      if (parsed && parsed.conditions.length) {
        setConditions(parsed.conditions);
        setAny(parsed.any);
      } else if (current) {
        setProblem("This expression nests and/or: edit it as an expression or as JSON.");
        return;
      }
    }
    setMode(next);
  };

  const update = (index: number, patch: Partial<Condition>) =>
    setConditions((list) => list.map((c, i) => (i === index ? { ...c, ...patch } : c)));

  const apply = () => {
    if (mode === "expression") {
      const compiled = compileExpression(expression);
      if (compiled.error) {
        setProblem(compiled.error);
        return;
      }
      setProblem(null);
      setQuery({ f: compiled.doc ? JSON.stringify(compiled.doc) : null }, false);
      onClose();
      return;
    }
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
      <div class="filter-modes" role="radiogroup" aria-label="Filter editor">
        {(
          [
            ["conditions", "Conditions"],
            ["expression", "Expression (and / or / parentheses)"],
            ["json", "JSON (MongoDB-style)"],
          ] as [Mode, string][]
        ).map(([value, label]) => (
          <label class="control-check" key={value}>
            <input type="radio" name="filter-mode" checked={mode === value} onChange={() => switchMode(value)} />
            <span>{label}</span>
          </label>
        ))}
      </div>
      {mode === "expression" ? (
        <ExpressionInput value={expression} fields={fields} onChange={setExpression} onApply={apply} />
      ) : raw ? (
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
