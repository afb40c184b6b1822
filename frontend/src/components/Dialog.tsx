// Modal dialogs (native <dialog>: focus trap, Escape to cancel) with a promise API.
import { useEffect, useRef, useState } from "preact/hooks";

interface ConfirmRequest {
  kind: "confirm";
  title: string;
  message: string;
  confirmLabel: string;
  danger: boolean;
  resolve: (ok: boolean) => void;
}

interface PromptRequest {
  kind: "prompt";
  title: string;
  label: string;
  initial: string;
  confirmLabel: string;
  suggestions: string[];
  resolve: (value: string | null) => void;
}

type Request = ConfirmRequest | PromptRequest;

let show: ((request: Request) => void) | null = null;

export function confirmDialog(options: { title: string; message: string; confirmLabel?: string; danger?: boolean }): Promise<boolean> {
  return new Promise((resolve) => {
    show?.({ kind: "confirm", confirmLabel: "Confirm", danger: false, ...options, resolve });
  });
}

export function promptDialog(options: {
  title: string;
  label: string;
  initial?: string;
  confirmLabel?: string;
  suggestions?: string[];
}): Promise<string | null> {
  return new Promise((resolve) => {
    show?.({ kind: "prompt", initial: "", confirmLabel: "Save", suggestions: [], ...options, resolve });
  });
}

export function DialogHost() {
  const [request, setRequest] = useState<Request | null>(null);
  const [value, setValue] = useState("");
  const ref = useRef<HTMLDialogElement>(null);
  const returnFocus = useRef<Element | null>(null);

  useEffect(() => {
    show = (next) => {
      returnFocus.current = document.activeElement;
      setValue(next.kind === "prompt" ? next.initial : "");
      setRequest(next);
    };
    return () => {
      show = null;
    };
  }, []);

  useEffect(() => {
    const dialog = ref.current;
    if (request && dialog && !dialog.open) dialog.showModal();
  }, [request]);

  const finish = (ok: boolean) => {
    const current = request;
    if (!current) return;
    setRequest(null);
    ref.current?.close();
    if (current.kind === "confirm") current.resolve(ok);
    else current.resolve(ok && value.trim() ? value.trim() : null);
    if (returnFocus.current instanceof HTMLElement) returnFocus.current.focus();
  };

  return (
    <dialog
      ref={ref}
      class="dialog"
      aria-labelledby="dialog-title"
      onCancel={(event) => {
        event.preventDefault();
        finish(false);
      }}
    >
      {request && (
        <form
          method="dialog"
          onSubmit={(event) => {
            event.preventDefault();
            finish(true);
          }}
        >
          <h2 id="dialog-title">{request.title}</h2>
          {request.kind === "confirm" ? (
            <p class="dialog-message">{request.message}</p>
          ) : (
            <label class="field">
              <span>{request.label}</span>
              <input
                autoFocus
                value={value}
                list={request.suggestions.length ? "dialog-suggestions" : undefined}
                onInput={(event) => setValue((event.target as HTMLInputElement).value)}
              />
              {request.suggestions.length > 0 && (
                <datalist id="dialog-suggestions">
                  {request.suggestions.map((s) => (
                    <option key={s} value={s} />
                  ))}
                </datalist>
              )}
            </label>
          )}
          <div class="dialog-actions">
            <button type="button" class="btn" onClick={() => finish(false)}>
              Cancel
            </button>
            <button
              type="submit"
              class={`btn ${request.kind === "confirm" && request.danger ? "btn-danger" : "btn-primary"}`}
              autoFocus={request.kind === "confirm"}
            >
              {request.confirmLabel}
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}
