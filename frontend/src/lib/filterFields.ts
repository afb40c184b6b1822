// The one field and operator table behind both filter editors: the conditions editor
// (components/FilterBar.tsx) and the typed expressions (lib/filterExpr.ts).

/** How a column's values are read from what the user typed. */
export type FieldKind = "text" | "date" | "number";

/** The run columns every project has (config.* and summary_metrics.* keys come from the project). */
export const FIELDS: readonly { name: string; kind: FieldKind }[] = [
  { name: "display_name", kind: "text" },
  { name: "state", kind: "text" },
  { name: "tags", kind: "text" },
  { name: "group", kind: "text" },
  { name: "jobType", kind: "text" },
  { name: "name", kind: "text" },
  { name: "host", kind: "text" },
  { name: "username", kind: "text" },
  { name: "notes", kind: "text" },
  { name: "createdAt", kind: "date" },
  { name: "heartbeatAt", kind: "date" },
  { name: "duration", kind: "number" },
];

export const BASE_FIELDS: string[] = FIELDS.map((f) => f.name);

const KINDS = new Map<string, FieldKind>(FIELDS.map((f) => [f.name, f.kind]));

/** The kind of `field`; config and summary keys hold numbers, text or booleans as typed. */
export function fieldKind(field: string): FieldKind | undefined {
  return KINDS.get(field);
}

/** Operators: the label shown, the MongoDB operator sent, and the spellings an expression may use
 * (none: the conditions editor alone offers it). */
export const OPERATOR_TABLE = [
  { label: "=", mongo: "$eq", typed: ["=", "=="], list: false },
  { label: "≠", mongo: "$ne", typed: ["≠", "!="], list: false },
  { label: "<", mongo: "$lt", typed: ["<"], list: false },
  { label: "≤", mongo: "$lte", typed: ["≤", "<="], list: false },
  { label: ">", mongo: "$gt", typed: [">"], list: false },
  { label: "≥", mongo: "$gte", typed: ["≥", ">="], list: false },
  { label: "IN", mongo: "$in", typed: ["IN"], list: true },
  { label: "NOT IN", mongo: "$nin", typed: ["NOT IN"], list: true },
  { label: "matches", mongo: "$regex", typed: [], list: false },
] as const;

export type Operator = (typeof OPERATOR_TABLE)[number]["label"];
export type OperatorSpec = (typeof OPERATOR_TABLE)[number];

export const OPERATORS: Operator[] = OPERATOR_TABLE.map((o) => o.label);

/** The operator with this label. */
export function operator(label: Operator): OperatorSpec {
  return OPERATOR_TABLE.find((o) => o.label === label) ?? OPERATOR_TABLE[0];
}

/** The operator sending `mongo` (e.g. `$gte`), if the editors know it. */
export function operatorOf(mongo: string): OperatorSpec | undefined {
  return OPERATOR_TABLE.find((o) => o.mongo === mongo);
}

/** The operator an expression spells `text` (`>=`, `≥`, `IN`...), if any. */
export function typedOperator(text: string): OperatorSpec | undefined {
  return OPERATOR_TABLE.find((o) => (o.typed as readonly string[]).includes(text));
}
