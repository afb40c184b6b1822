// The app shell: top bar, theme switch, login state, and the route table.
import { onUnauthorized, SESSION_ENDED } from "./api";
import { DialogHost } from "./components/Dialog";
import { PageTitle } from "./components/PageTitle";
import { ToastHost } from "./components/Toast";
import { refreshViewer, UserMenu } from "./components/UserMenu";
import { setTheme, useTheme } from "./lib/hooks";
import { ComparePage } from "./pages/Compare";
import { HomePage } from "./pages/Home";
import { LoginPage } from "./pages/Login";
import { ProjectPage } from "./pages/Project";
import { RUN_TABS, RunPage, type RunTab } from "./pages/Run";
import { LOGIN_PATH, loginPath } from "./paths";
import { navigate, useLocation } from "./router";

// Any API call refused for want of a key sends the user to log in, then back here: either the session
// ended (its key was revoked) or the page is one anonymous visitors cannot see.
onUnauthorized((error) => {
  const { pathname, search } = window.location;
  if (pathname === LOGIN_PATH) return;
  navigate(loginPath(pathname + search, error.code === SESSION_ENDED ? "expired" : "needed"));
  void refreshViewer(); // the top bar stops naming a user whose session has ended
});

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** Third path segments that name a project view, never a run: `/<entity>/<project>/<run-id>` opens a
 * run only when the id is none of these (such a run stays reachable at `/<entity>/<project>/runs/<id>`). */
export const PROJECT_VIEWS = new Set(["table", "workspace", "compare", "runs", "artifacts", "settings"]);

function Routes() {
  const { path } = useLocation();
  const parts = path.split("/").filter(Boolean).map(decode);
  if (parts.length === 0)
    return (
      <>
        <PageTitle parts={["Projects"]} />
        <HomePage />
      </>
    );
  if (path === LOGIN_PATH)
    return (
      <>
        <PageTitle parts={["Log in"]} />
        <LoginPage />
      </>
    );
  if (parts.length === 2 || (parts.length === 3 && (parts[2] === "table" || parts[2] === "workspace"))) {
    const tab = parts[2] === "table" ? "table" : "workspace";
    return (
      <>
        <PageTitle parts={[tab === "table" ? "Runs" : "Workspace", `${parts[0]}/${parts[1]}`]} />
        <ProjectPage key={`${parts[0]}/${parts[1]}`} entity={parts[0]} project={parts[1]} tab={tab} />
      </>
    );
  }
  if (parts.length === 3 && parts[2] === "compare")
    return (
      <>
        <PageTitle parts={["Compare runs", `${parts[0]}/${parts[1]}`]} />
        <ComparePage key={`${parts[0]}/${parts[1]}`} entity={parts[0]} project={parts[1]} />
      </>
    );
  if (parts.length === 3 && !PROJECT_VIEWS.has(parts[2])) {
    // The short form the W&B docs give: /<entity>/<project>/<run-id> is the run's Overview.
    const [entity, project, runId] = parts;
    return <RunPage key={`${entity}/${project}/${runId}/`} entity={entity} project={project} runId={runId} incarnation={null} tab="overview" />;
  }
  if (parts.length >= 4 && parts[2] === "runs") {
    const [entity, project, , runId, ...rest] = parts;
    let incarnation: string | null = null;
    if (rest[0] === "incarnations" && rest[1]) {
      incarnation = rest[1];
      rest.splice(0, 2);
    }
    const tab = (rest[0] ?? "overview") as RunTab;
    if (rest.length <= 1 && RUN_TABS.includes(tab)) {
      return <RunPage key={`${entity}/${project}/${runId}/${incarnation ?? ""}`} entity={entity} project={project} runId={runId} incarnation={incarnation} tab={tab} />;
    }
  }
  return (
    <div class="page empty">
      <PageTitle parts={["Page not found"]} />
      <h1>Page not found</h1>
      <p>
        Nothing lives at <code>{path}</code>. <a href="/">Go to the projects</a>.
      </p>
    </div>
  );
}

export function App() {
  const theme = useTheme();
  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a href="/" class="brand" aria-label="branchline home">
          <svg viewBox="0 0 32 32" width="22" height="22" aria-hidden="true">
            <rect width="32" height="32" rx="7" fill="currentColor" />
            <path d="M9 24V8m0 8c0-4 3-6 7-6h7M9 16c0 4 3 6 7 6h7" stroke="var(--topbar-bg)" stroke-width="2.6" fill="none" stroke-linecap="round" />
          </svg>
          branchline
        </a>
        <div class="spacer" />
        <a class="topbar-link" href="/api/v1/docs" target="_blank" rel="noreferrer">
          API
        </a>
        <UserMenu />
        <button
          type="button"
          class="btn-icon theme-toggle"
          aria-label={theme === "dark" ? "Switch to light theme" : "Switch to dark theme"}
          title={theme === "dark" ? "Light theme" : "Dark theme"}
          onClick={() => setTheme(theme === "dark" ? "light" : "dark")}
        >
          <span aria-hidden="true">{theme === "dark" ? "☀" : "☾"}</span>
        </button>
      </header>
      <div id="main" class="main">
        <Routes />
      </div>
      <DialogHost />
      <ToastHost />
    </>
  );
}
