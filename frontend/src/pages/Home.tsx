// Home: every project with its run count and last activity, searchable.
import { api, errorText } from "../api";
import { formatAgo } from "../lib/format";
import { useAsync, usePoll } from "../lib/hooks";
import { projectPath } from "../paths";
import { setQuery, useLocation } from "../router";

export function HomePage() {
  const { query } = useLocation();
  const search = query.get("q") ?? "";
  const projects = useAsync(() => api.projects(), []);
  usePoll(projects.reload, 10000, true);
  const needle = search.trim().toLowerCase();
  const list = (projects.data?.projects ?? []).filter(
    (p) => !needle || p.name.toLowerCase().includes(needle) || p.entity.toLowerCase().includes(needle),
  );
  return (
    <div class="page page-home">
      <header class="page-head home-head">
        <h1>Projects</h1>
        <label class="control">
          <span class="sr-only">Search projects</span>
          <input type="search" class="input" placeholder="Search projects…" value={search} onInput={(event) => setQuery({ q: (event.target as HTMLInputElement).value })} />
        </label>
      </header>
      {projects.error !== undefined && <p class="error-text">{errorText(projects.error)}</p>}
      {projects.data && projects.data.projects.length === 0 ? (
        <div class="empty welcome">
          <h2>No runs yet</h2>
          <p>Log your first run and it shows up here:</p>
          <pre class="snippet">{`import branchline as wandb

run = wandb.init(project="my-project", config={"lr": 0.01})
for step in range(100):
    run.log({"loss": 1 / (step + 1)})
run.finish()`}</pre>
        </div>
      ) : (
        <table class="data-table projects">
          <caption class="sr-only">Projects</caption>
          <thead>
            <tr>
              <th scope="col">Project</th>
              <th scope="col">Entity</th>
              <th scope="col" class="num">
                Runs
              </th>
              <th scope="col" class="num">
                Running
              </th>
              <th scope="col">Last activity</th>
            </tr>
          </thead>
          <tbody>
            {list.map((p) => (
              <tr key={`${p.entity}/${p.name}`}>
                <td>
                  <a href={projectPath(p.entity, p.name)} class="project-link">
                    {p.name}
                  </a>
                </td>
                <td>{p.entity}</td>
                <td class="num">{p.run_count}</td>
                <td class="num">{p.running_count ? <span class="state state-running"><span class="state-dot" aria-hidden="true" />{p.running_count}</span> : "–"}</td>
                <td>{formatAgo(p.last_activity)}</td>
              </tr>
            ))}
            {projects.data && list.length === 0 && (
              <tr>
                <td colSpan={5} class="muted">
                  No project matches “{search}”.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
    </div>
  );
}
