// Login: an API key in, an HttpOnly session cookie out (POST /api/v1/session), then back to where the user was.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api, errorText } from "../api";
import { setViewer, useViewer } from "../components/UserMenu";
import { safeNext } from "../paths";
import { navigate, useLocation } from "../router";

const REASONS: Record<string, string> = {
  expired: "Your session has ended (its API key was revoked or is unknown). Log in again to continue.",
  needed: "That page needs you to log in: this server only shows public projects to anonymous visitors.",
};

export function LoginPage() {
  const { query } = useLocation();
  const next = safeNext(query.get("next"));
  const reason = REASONS[query.get("why") ?? ""];
  const who = useViewer();
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    document.title = "Log in · branchline";
    input.current?.focus();
    return () => {
      document.title = "branchline";
    };
  }, []);

  const submit = (event: Event) => {
    event.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) {
      setError("Enter an API key.");
      input.current?.focus();
      return;
    }
    setBusy(true);
    setError(null);
    api.login(trimmed).then(
      (viewer) => {
        setViewer(viewer);
        navigate(next);
      },
      (failure: unknown) => {
        setBusy(false);
        setError(failure instanceof ApiError && failure.status === 401 ? "That API key was not accepted: it is malformed, unknown or revoked." : errorText(failure));
        input.current?.select();
      },
    );
  };

  if (who && !who.auth_required) {
    return (
      <div class="page login-page">
        <div class="login-card">
          <h1>No login here</h1>
          <p class="muted">This server does not check API keys: everyone who can reach it sees every project.</p>
          <a class="btn" href={next}>
            Continue
          </a>
        </div>
      </div>
    );
  }

  return (
    <div class="page login-page">
      <form class="login-card" onSubmit={submit} noValidate aria-labelledby="login-title">
        <h1 id="login-title">Log in</h1>
        {reason && (
          <p class="banner login-reason" role="status">
            {reason}
          </p>
        )}
        {who?.username && (
          <p class="muted">
            You are logged in as <strong>{who.username}</strong>; another key switches user.
          </p>
        )}
        <div class="login-field">
          <label for="login-key">API key</label>
          <input
            ref={input}
            id="login-key"
            name="api_key"
            type="password"
            class="input"
            autoComplete="current-password"
            spellcheck={false}
            value={key}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? "login-error login-hint" : "login-hint"}
            onInput={(event) => setKey((event.target as HTMLInputElement).value)}
          />
          <p id="login-hint" class="hint">
            Ask your server's admin for a key, or create one on the server with <code>branchline keys create &lt;user&gt;</code>.
            The key is kept in an HttpOnly cookie of this browser until you log out.
          </p>
        </div>
        {error && (
          <p id="login-error" class="error-text login-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="btn btn-primary btn-block" disabled={busy}>
          {busy ? "Logging in…" : "Log in"}
        </button>
        <p class="hint login-back">
          <a href="/">Continue without logging in</a> (public projects only)
        </p>
      </form>
    </div>
  );
}
