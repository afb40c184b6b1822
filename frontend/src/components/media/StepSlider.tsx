// The step a media panel shows: a slider over every step any run logged the key at.
import { formatNumber } from "../../lib/format";

export function StepSlider({ steps, value, onChange, label }: { steps: number[]; value: number; onChange: (step: number) => void; label: string }) {
  if (steps.length <= 1) return steps.length ? <span class="media-step">Step {formatNumber(steps[0] ?? 0)}</span> : null;
  const index = Math.max(0, steps.findIndex((s) => s >= value));
  return (
    <label class="media-slider">
      <span class="media-step">Step {formatNumber(steps[index] ?? value)}</span>
      <input
        type="range"
        min={0}
        max={steps.length - 1}
        step={1}
        value={index}
        aria-label={`${label}: step`}
        aria-valuetext={`step ${steps[index] ?? value}`}
        onInput={(event) => onChange(steps[Number((event.target as HTMLInputElement).value)] ?? value)}
      />
    </label>
  );
}
