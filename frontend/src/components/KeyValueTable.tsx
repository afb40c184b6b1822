// A searchable two-column table of flattened keys (config, summary, metadata).
import { useMemo, useState } from "preact/hooks";
import { flatten } from "../lib/flatten";
import { formatValue } from "../lib/format";

export function KeyValueTable({ title, doc, empty }: { title: string; doc: Record<string, unknown>; empty: string }) {
  const [query, setQuery] = useState("");
  const rows = useMemo(() => flatten(doc).filter(([key]) => !key.startsWith("_wandb")), [doc]);
  const needle = query.trim().toLowerCase();
  const shown = needle
    ? rows.filter(([key, value]) => key.toLowerCase().includes(needle) || formatValue(value).toLowerCase().includes(needle))
    : rows;
  const id = `kv-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return (
    <section class="card kv" aria-labelledby={id}>
      <header class="card-header">
        <h2 id={id}>{title}</h2>
        <input
          type="search"
          class="input input-sm"
          placeholder={`Search ${title.toLowerCase()}…`}
          aria-label={`Search ${title.toLowerCase()}`}
          value={query}
          onInput={(event) => setQuery((event.target as HTMLInputElement).value)}
        />
      </header>
      {rows.length === 0 ? (
        <p class="muted pad">{empty}</p>
      ) : (
        <table class="kv-table">
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Value</th>
            </tr>
          </thead>
          <tbody>
            {shown.map(([key, value]) => (
              <tr key={key}>
                <th scope="row">{key}</th>
                <td>{formatValue(value)}</td>
              </tr>
            ))}
            {shown.length === 0 && (
              <tr>
                <td colSpan={2} class="muted">
                  No key matches “{query}”.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
    </section>
  );
}
