// Short status messages in a polite live region.
import { useEffect, useState } from "preact/hooks";

interface Message {
  id: number;
  text: string;
  kind: "info" | "error";
}

let push: ((message: Message) => void) | null = null;
let counter = 0;

export function toast(text: string, kind: "info" | "error" = "info"): void {
  counter += 1;
  push?.({ id: counter, text, kind });
}

export function ToastHost() {
  const [messages, setMessages] = useState<Message[]>([]);
  useEffect(() => {
    push = (message) => {
      setMessages((old) => [...old.slice(-3), message]);
      window.setTimeout(() => setMessages((old) => old.filter((m) => m.id !== message.id)), message.kind === "error" ? 8000 : 3500);
    };
    return () => {
      push = null;
    };
  }, []);
  return (
    <div class="toasts" role="status" aria-live="polite">
      {messages.map((m) => (
        <div key={m.id} class={`toast toast-${m.kind}`}>
          {m.text}
        </div>
      ))}
    </div>
  );
}
