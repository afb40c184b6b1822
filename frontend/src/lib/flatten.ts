// Nested config and summary objects as flat "a.b.c" paths, as the tables show them.

export function flatten(doc: Record<string, unknown>, prefix = "", depth = 0, out: [string, unknown][] = []): [string, unknown][] {
  for (const [name, value] of Object.entries(doc)) {
    const path = prefix ? `${prefix}.${name}` : name;
    if (value && typeof value === "object" && !Array.isArray(value) && !("_type" in value) && depth < 4 && Object.keys(value).length) {
      flatten(value as Record<string, unknown>, path, depth + 1, out);
    } else out.push([path, value]);
  }
  return out;
}

export function lookup(doc: Record<string, unknown>, path: string): unknown {
  if (path in doc) return doc[path];
  let node: unknown = doc;
  for (const part of path.split(".")) {
    if (!node || typeof node !== "object" || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}
