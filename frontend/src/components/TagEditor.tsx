// Tags as removable chips plus an input to add one (Enter or comma).
import { useState } from "preact/hooks";

export function TagList({ tags }: { tags: string[] }) {
  return (
    <span class="tags">
      {tags.map((tag) => (
        <span class="tag" key={tag}>
          {tag}
        </span>
      ))}
    </span>
  );
}

export function TagEditor({
  tags,
  onChange,
  disabled = false,
}: {
  tags: string[];
  onChange: (tags: string[]) => void;
  disabled?: boolean;
}) {
  const [draft, setDraft] = useState("");
  const add = () => {
    const fresh = draft
      .split(",")
      .map((t) => t.trim())
      .filter((t) => t && !tags.includes(t));
    setDraft("");
    if (fresh.length) onChange([...tags, ...fresh]);
  };
  return (
    <div class="tag-editor">
      {tags.map((tag) => (
        <span class="tag" key={tag}>
          {tag}
          {!disabled && (
            <button type="button" class="tag-remove" aria-label={`Remove tag ${tag}`} onClick={() => onChange(tags.filter((t) => t !== tag))}>
              ×
            </button>
          )}
        </span>
      ))}
      {!disabled && (
        <input
          class="tag-input"
          aria-label="Add a tag"
          placeholder="Add tag…"
          value={draft}
          onInput={(event) => setDraft((event.target as HTMLInputElement).value)}
          onKeyDown={(event) => {
            if (event.key === "Enter" || event.key === ",") {
              event.preventDefault();
              add();
            } else if (event.key === "Backspace" && !draft && tags.length) {
              onChange(tags.slice(0, -1));
            }
          }}
          onBlur={() => draft.trim() && add()}
        />
      )}
    </div>
  );
}
