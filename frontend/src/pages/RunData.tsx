// Run tabs backed by per-run resources: console logs, files and artifacts.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, errorText, type ConsoleLine, type RunFile } from "../api";
import { parseAnsi, stripAnsi } from "../lib/ansi";
import { formatBytes, formatDate } from "../lib/format";
import { mediaFileUrl } from "../lib/media";
import { useAsync, usePoll } from "../lib/hooks";
import { setQuery, useLocation } from "../router";
import type { TableBody } from "../components/media/mediaData";
import { TableView } from "../components/media/TablePanel";

function AnsiLine({ text, needle }: { text: string; needle: string }) {
  const segments = parseAnsi(text);
  return (
    <>
      {segments.map((segment, i) => {
        const style = {
          color: segment.fg,
          background: segment.bg,
          fontWeight: segment.bold ? 600 : undefined,
          opacity: segment.dim ? 0.7 : undefined,
          fontStyle: segment.italic ? "italic" : undefined,
          textDecoration: segment.underline ? "underline" : undefined,
        };
        if (!needle) return <span key={i} style={style}>{segment.text}</span>;
        const parts: preact.JSX.Element[] = [];
        const lower = segment.text.toLowerCase();
        let at = 0;
        for (let hit = lower.indexOf(needle); hit >= 0; hit = lower.indexOf(needle, at)) {
          if (hit > at) parts.push(<span key={`${i}-${at}`}>{segment.text.slice(at, hit)}</span>);
          parts.push(<mark key={`${i}-${hit}m`}>{segment.text.slice(hit, hit + needle.length)}</mark>);
          at = hit + needle.length;
        }
        if (at < segment.text.length) parts.push(<span key={`${i}-end`}>{segment.text.slice(at)}</span>);
        return (
          <span key={i} style={style}>
            {parts}
          </span>
        );
      })}
    </>
  );
}

export function LogsTab({ base, running, runId }: { base: string; running: boolean; runId: string }) {
  const { query } = useLocation();
  const search = query.get("q") ?? "";
  const [lines, setLines] = useState<ConsoleLine[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const next = useRef(0);
  const busy = useRef(false);

  const fetchMore = () => {
    if (busy.current) return;
    busy.current = true;
    api.logs(base, next.current).then(
      (result) => {
        busy.current = false;
        setLoaded(true);
        setError(null);
        if (result.lines.length) {
          next.current = result.next_line;
          setLines((old) => [...old, ...result.lines]);
        }
      },
      (err: unknown) => {
        busy.current = false;
        setLoaded(true);
        setError(errorText(err));
      },
    );
  };

  useEffect(() => {
    next.current = 0;
    setLines([]);
    setLoaded(false);
    fetchMore();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [base]);
  usePoll(fetchMore, 2000, running);

  const needle = search.trim().toLowerCase();
  const shown = useMemo(() => (needle ? lines.filter((l) => stripAnsi(l.text).toLowerCase().includes(needle)) : lines), [lines, needle]);
  const download = () => {
    const blob = new Blob([lines.map((l) => stripAnsi(l.text)).join("\n") + "\n"], { type: "text/plain" });
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = `${runId}-output.log`;
    link.click();
    window.setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  return (
    <section class="logs" aria-label="Console output">
      <div class="table-bar">
        <label class="control">
          <span class="sr-only">Search the logs</span>
          <input type="search" class="input" placeholder="Search logs…" value={search} onInput={(event) => setQuery({ q: (event.target as HTMLInputElement).value })} />
        </label>
        <span class="muted">
          {needle ? `${shown.length} of ${lines.length} lines` : `${lines.length} lines`}
          {running ? " · live" : ""}
        </span>
        <div class="spacer" />
        <button type="button" class="btn" onClick={download} disabled={!lines.length}>
          Download
        </button>
      </div>
      {error && <p class="error-text">{error}</p>}
      {loaded && lines.length === 0 ? (
        <p class="empty">No console output was captured for this run.</p>
      ) : (
        <div class="console" role="log" tabIndex={0} aria-label="Console lines">
          {shown.map((line) => (
            <div key={line.line_no} class={`console-line${line.stream === "stderr" ? " stderr" : ""}`}>
              <span class="line-no" aria-hidden="true">
                {line.line_no + 1}
              </span>
              <span class="line-text">
                <AnsiLine text={line.text} needle={needle} />
              </span>
            </div>
          ))}
        </div>
      )}
    </section>
  );
}

const TEXT = /\.(txt|log|json|jsonl|ya?ml|md|py|csv|tsv|toml|cfg|ini|sh)$/i;
const IMAGE = /\.(png|jpe?g|gif|webp)$/i;
const AUDIO = /\.(wav|mp3|ogg|oga|flac|m4a|aac)$/i;
const VIDEO = /\.(mp4|webm|ogv|mov)$/i;
const HTML = /\.html?$/i;
const TABLE = /\.table\.json$/i;

function fileUrl(base: string, path: string, inline = false): string {
  return `${base}/files/${path.split("/").map(encodeURIComponent).join("/")}${inline ? "?inline=true" : ""}`;
}

/** A JSON file pretty-printed (as it is when it does not parse). */
export function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function Preview({ base, file, incarnation }: { base: string; file: RunFile; incarnation?: string }) {
  const [content, setContent] = useState<string | null>(null);
  // A table through the media route: a wandb client's table file holds plain cells only, and that
  // route answers the whole table (from the run's `run_table` artifact), image cells with URLs.
  const url = TABLE.test(file.path) && incarnation ? mediaFileUrl(incarnation, file.path) : fileUrl(base, file.path, true);
  useEffect(() => {
    setContent(null);
    if (!TEXT.test(file.path)) return;
    fetch(url)
      .then((r) => (r.ok ? r.text() : Promise.reject(new Error(`${r.status}`))))
      .then((body) => {
        if (body.length > 200_000) setContent(`${body.slice(0, 200_000)}\n… (truncated)`);
        else setContent(/\.json$/i.test(file.path) ? prettyJson(body) : body);
      })
      .catch(() => setContent("Could not load the file."));
  }, [url, file.path]);
  if (IMAGE.test(file.path)) return <img class="file-image" src={url} alt={file.path} />;
  if (AUDIO.test(file.path)) return <audio class="media-audio pad" controls preload="metadata" src={url} aria-label={file.path} />;
  if (VIDEO.test(file.path)) return <video class="media-video pad" controls preload="metadata" src={url} aria-label={file.path} />;
  // Sandboxed without allow-same-origin, and served with a CSP sandbox: its script cannot reach our origin.
  if (HTML.test(file.path)) return <iframe class="media-html" sandbox="allow-scripts" src={url} title={file.path} referrerpolicy="no-referrer" />;
  if (TABLE.test(file.path) && content !== null && content.trimStart().startsWith("{")) {
    let table: TableBody | null = null;
    try {
      const body = JSON.parse(content) as Partial<TableBody>;
      if (Array.isArray(body.columns) && Array.isArray(body.data)) table = { columns: body.columns, data: body.data };
    } catch {
      table = null;
    }
    if (table) return <TableView table={table} resolve={(path) => fileUrl(base, path, true)} title={file.path} />;
  }
  if (!TEXT.test(file.path)) return <p class="muted pad">No preview for this kind of file; download it instead.</p>;
  return <pre class="file-text">{content ?? "Loading…"}</pre>;
}

interface FileNode {
  name: string;
  path: string;
  file?: RunFile;
  children: Map<string, FileNode>;
  size: number;
  count: number;
}

/** The run's files as a directory tree (directories first, then files, each by name). */
export function fileTree(files: RunFile[]): FileNode {
  const root: FileNode = { name: "", path: "", children: new Map(), size: 0, count: 0 };
  for (const file of files) {
    const parts = file.path.split("/").filter(Boolean);
    let node = root;
    node.size += file.size;
    node.count += 1;
    parts.forEach((part, index) => {
      const path = parts.slice(0, index + 1).join("/");
      let child = node.children.get(part);
      if (!child) {
        child = { name: part, path, children: new Map(), size: 0, count: 0 };
        node.children.set(part, child);
      }
      child.size += file.size;
      child.count += 1;
      if (index === parts.length - 1) child.file = file;
      node = child;
    });
  }
  return root;
}

function sortedChildren(node: FileNode): FileNode[] {
  return [...node.children.values()].sort((a, b) => Number(Boolean(a.file)) - Number(Boolean(b.file)) || a.name.localeCompare(b.name));
}

function TreeLevel({
  node,
  depth,
  base,
  selected,
  closed,
  onToggle,
}: {
  node: FileNode;
  depth: number;
  base: string;
  selected: string | null;
  closed: Set<string>;
  onToggle: (path: string) => void;
}) {
  return (
    <ul class="file-tree" role={depth === 0 ? "tree" : "group"} aria-label={depth === 0 ? "Files of this run" : undefined}>
      {sortedChildren(node).map((child) => {
        const indent = { paddingLeft: `${8 + depth * 18}px` };
        if (child.file) {
          const file = child.file;
          return (
            <li key={child.path} role="treeitem" aria-level={depth + 1} aria-selected={file.path === selected} data-path={file.path}>
              <div class={`tree-row${file.path === selected ? " selected" : ""}`} style={indent}>
                <span class="tree-icon" aria-hidden="true">▫</span>
                <button type="button" class="link-button tree-name" onClick={() => setQuery({ file: file.path === selected ? null : file.path }, false)} aria-pressed={file.path === selected} title={file.path}>
                  {child.name}
                </button>
                <span class="muted tree-size">{formatBytes(file.size)}</span>
                <span class="muted tree-date">{formatDate(file.updated_at)}</span>
                {file.available ? (
                  <a class="btn btn-xs" href={fileUrl(base, file.path)} download aria-label={`Download ${file.path}`}>
                    Download
                  </a>
                ) : (
                  <span class="muted">not on this server</span>
                )}
              </div>
            </li>
          );
        }
        const open = !closed.has(child.path);
        return (
          <li key={child.path} role="treeitem" aria-level={depth + 1} aria-expanded={open} data-path={child.path}>
            <div class="tree-row dir" style={indent}>
              <button type="button" class="tree-toggle" aria-expanded={open} aria-label={`${open ? "Collapse" : "Expand"} folder ${child.path}`} onClick={() => onToggle(child.path)}>
                <span aria-hidden="true">{open ? "▾" : "▸"}</span>
              </button>
              <span class="tree-name dir-name">{child.name}/</span>
              <span class="muted tree-size">
                {child.count} file{child.count === 1 ? "" : "s"}, {formatBytes(child.size)}
              </span>
            </div>
            {open && <TreeLevel node={child} depth={depth + 1} base={base} selected={selected} closed={closed} onToggle={onToggle} />}
          </li>
        );
      })}
    </ul>
  );
}

export function FilesTab({ base }: { base: string }) {
  const { query } = useLocation();
  const files = useAsync(() => api.files(base), [base]);
  const [closed, setClosed] = useState<Set<string>>(new Set());
  const selected = query.get("file");
  const list = files.data?.files ?? [];
  const tree = useMemo(() => fileTree(list), [list]);
  const current = list.find((f) => f.path === selected);
  if (files.error !== undefined) return <p class="error-text">{errorText(files.error)}</p>;
  if (files.data && list.length === 0) return <p class="empty">No files were saved with this run. Use run.save("path") to keep files with it.</p>;
  const toggle = (path: string) =>
    setClosed((old) => {
      const next = new Set(old);
      if (next.has(path)) next.delete(path);
      else next.add(path);
      return next;
    });
  return (
    <div class="files files-split">
      <section class="card file-tree-card" aria-label="Files">
        <header class="card-header">
          <h2>
            {list.length} file{list.length === 1 ? "" : "s"} <span class="muted">({formatBytes(tree.size)})</span>
          </h2>
        </header>
        <TreeLevel node={tree} depth={0} base={base} selected={selected} closed={closed} onToggle={toggle} />
      </section>
      {current ? (
        <section class="card" aria-label={`Preview of ${current.path}`}>
          <header class="card-header">
            <h2>{current.path}</h2>
          </header>
          {current.available ? <Preview base={base} file={current} incarnation={files.data?.incarnation_id} /> : <p class="muted pad">The content is not available on this server.</p>}
        </section>
      ) : (
        <p class="muted pad">Select a file to preview it (text, images, audio, video, tables and HTML).</p>
      )}
    </div>
  );
}

export function ArtifactsTab({ base }: { base: string }) {
  const artifacts = useAsync(() => api.artifacts(base), [base]);
  if (artifacts.error !== undefined) return <p class="error-text">{errorText(artifacts.error)}</p>;
  if (!artifacts.data) return <p class="muted pad">Loading…</p>;
  const { logged, used } = artifacts.data;
  if (!logged.length && !used.length) {
    return (
      <div class="empty">
        <p>
          <strong>No artifacts yet.</strong>
        </p>
        <p class="muted">Artifacts this run logs (outputs) or uses (inputs) appear here with their versions, e.g. run.log_artifact(artifact).</p>
      </div>
    );
  }
  const table = (title: string, rows: typeof logged) => (
    <section class="card" aria-label={title}>
      <header class="card-header">
        <h2>{title}</h2>
      </header>
      {rows.length === 0 ? (
        <p class="muted pad">None.</p>
      ) : (
        <table class="data-table">
          <thead>
            <tr>
              <th scope="col">Artifact</th>
              <th scope="col">Type</th>
              <th scope="col">Aliases</th>
              <th scope="col">Files</th>
              <th scope="col">Size</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((a) => (
              <tr key={a.id}>
                <td>
                  <strong>
                    {a.name}:{a.version}
                  </strong>
                  {a.project !== "" && <span class="muted"> · {a.entity}/{a.project}</span>}
                </td>
                <td>{a.type}</td>
                <td>
                  {a.aliases.map((alias) => (
                    <span class="tag" key={alias}>
                      {alias}
                    </span>
                  ))}
                </td>
                <td>{a.file_count}</td>
                <td>{formatBytes(a.size)}</td>
                <td>{formatDate(a.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
  return (
    <div class="artifacts">
      {table("Output artifacts", logged)}
      {table("Input artifacts", used)}
    </div>
  );
}
