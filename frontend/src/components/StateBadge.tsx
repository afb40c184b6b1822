// A run's state as a coloured badge with its name (never colour alone).

const LABELS: Record<string, string> = {
  running: "Running",
  finished: "Finished",
  failed: "Failed",
  crashed: "Crashed",
  killed: "Killed",
  preempting: "Preempting",
  preempted: "Preempted",
  pending: "Pending",
};

export function StateBadge({ state, compact = false }: { state: string; compact?: boolean }) {
  const label = LABELS[state] ?? state;
  return (
    <span class={`state state-${state}${compact ? " compact" : ""}`} title={label} data-state={state}>
      <span class="state-dot" aria-hidden="true" />
      {compact ? <span class="sr-only">{label}</span> : label}
    </span>
  );
}
