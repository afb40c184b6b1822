// Images of several runs side by side at one step, with a step slider; click one to enlarge it.
import { useMemo, useState } from "preact/hooks";
import { formatNumber } from "../../lib/format";
import { type Descriptor, imagesOf, type MediaRunValues, stepsUnion, valueAt } from "../../lib/media";
import { ImageView, Lightbox } from "./ImageView";
import type { MediaRun } from "./MediaPanel";
import { StepSlider } from "./StepSlider";

export function ImagePanel({ metricKey, runs, values }: { metricKey: string; runs: MediaRun[]; values: Map<string, MediaRunValues> }) {
  const steps = useMemo(() => stepsUnion([...values.values()]), [values]);
  const [step, setStep] = useState<number | null>(null);
  const [overlays, setOverlays] = useState(true);
  const [open, setOpen] = useState<{ image: Descriptor; title: string } | null>(null);
  const shown = step ?? steps[steps.length - 1] ?? 0;
  const hasOverlays = [...values.values()].some((run) => run.steps.some((s) => imagesOf(s.value).some((i) => i.boxes || i.masks)));
  return (
    <>
      <div class="media-toolbar">
        <StepSlider steps={steps} value={shown} onChange={setStep} label={metricKey} />
        {hasOverlays && (
          <label class="media-toggle">
            <input type="checkbox" checked={overlays} onChange={(event) => setOverlays((event.target as HTMLInputElement).checked)} /> Boxes and masks
          </label>
        )}
      </div>
      <div class="media-runs">
        {runs.map((run) => {
          const found = valueAt(values.get(run.incarnation_id)?.steps ?? [], shown);
          const images = imagesOf(found?.value);
          return (
            <figure class="media-run" key={run.incarnation_id} data-run={run.name}>
              <figcaption class="media-run-name">
                <span class="swatch" style={{ background: run.color }} aria-hidden="true" />
                <span>{run.name}</span>
                {found && found.step !== shown && <span class="muted"> (step {formatNumber(found.step)})</span>}
              </figcaption>
              {images.length === 0 ? (
                <p class="media-none">No image at this step.</p>
              ) : (
                <div class="media-images">
                  {images.map((image, i) => (
                    <div class="media-cell" key={`${found?.step}-${i}`}>
                      <ImageView
                        image={image}
                        overlays={overlays}
                        onOpen={() => setOpen({ image, title: `${metricKey} · ${run.name} · step ${found?.step ?? shown}` })}
                      />
                      {image.caption && <span class="media-caption">{String(image.caption)}</span>}
                    </div>
                  ))}
                </div>
              )}
            </figure>
          );
        })}
      </div>
      {open && <Lightbox image={open.image} title={open.title} onClose={() => setOpen(null)} />}
    </>
  );
}
