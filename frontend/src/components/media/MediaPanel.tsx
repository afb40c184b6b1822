// A workspace panel for one media history key (images, tables, histograms, plots, audio, video, HTML).
import type { JSX } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { errorText } from "../../api";
import { formatNumber } from "../../lib/format";
import { type Descriptor, type MediaRunValues, stepsUnion, valueAt } from "../../lib/media";
import { HistogramPanel } from "./HistogramPanel";
import { ImagePanel } from "./ImagePanel";
import { loadMedia, useVisible } from "./mediaData";
import { PlotPanel } from "./PlotPanel";
import { StepSlider } from "./StepSlider";
import { TablePanel } from "./TablePanel";
import "./media.css";

export type MediaKind = "image" | "table" | "histogram" | "plot" | "audio" | "video" | "html";

/** The panel kind for a history key's descriptor `_type` (e.g. "image-file", "table-file",
 *  "histogram", "audio-file", "video-file", "html-file", plot presets), or null if not media. */
export function mediaKindOf(mediaType: string | null | undefined): MediaKind | null {
  if (!mediaType) return null;
  if (mediaType === "image-file" || mediaType.startsWith("images/")) return "image";
  if (mediaType === "table-file" || mediaType === "joined-table" || mediaType === "partitioned-table") return "table";
  if (mediaType === "histogram") return "histogram";
  if (mediaType === "audio-file" || mediaType.startsWith("audio")) return "audio";
  if (mediaType === "video-file" || mediaType.startsWith("videos")) return "video";
  if (mediaType === "html-file" || mediaType.startsWith("html")) return "html";
  if (mediaType.startsWith("plot") || mediaType === "chart") return "plot";
  return null;
}

export interface MediaRun {
  incarnation_id: string;
  name: string;
  color: string;
}

/** How many values per run a panel asks for (evenly spaced beyond it). */
const LIMITS: Record<MediaKind, number> = { image: 1000, table: 200, histogram: 400, plot: 200, audio: 500, video: 500, html: 200 };

function Player({ kind, value, title }: { kind: MediaKind; value: Descriptor; title: string }) {
  if (!value.url) return <p class="media-none">No file.</p>;
  if (kind === "audio") return <audio class="media-audio" controls preload="metadata" src={value.url} aria-label={title} />;
  if (kind === "html") return <iframe class="media-html" sandbox="allow-scripts" src={value.url} title={title} referrerpolicy="no-referrer" loading="lazy" />;
  // Arrays are stored as animated GIFs, which only <img> plays.
  if (value.format === "gif" || value.path?.endsWith(".gif")) return <img class="media-video" src={value.url} alt={title} />;
  return <video class="media-video" controls preload="metadata" src={value.url} aria-label={title} />;
}

/** Audio, video and HTML: each run's file at the chosen step, side by side. */
function FilePanel({ metricKey, kind, runs, values }: { metricKey: string; kind: MediaKind; runs: MediaRun[]; values: Map<string, MediaRunValues> }) {
  const steps = useMemo(() => stepsUnion([...values.values()]), [values]);
  const [step, setStep] = useState<number | null>(null);
  const shown = step ?? steps[steps.length - 1] ?? 0;
  return (
    <>
      <div class="media-toolbar">
        <StepSlider steps={steps} value={shown} onChange={setStep} label={metricKey} />
      </div>
      <div class={`media-runs${kind === "html" ? " media-runs-wide" : ""}`}>
        {runs.map((run) => {
          const found = valueAt(values.get(run.incarnation_id)?.steps ?? [], shown);
          if (!found) return null;
          return (
            <figure class="media-run" key={run.incarnation_id} data-run={run.name}>
              <figcaption class="media-run-name">
                <span class="swatch" style={{ background: run.color }} aria-hidden="true" />
                <span>{run.name}</span>
                {found.step !== shown && <span class="muted"> (step {formatNumber(found.step)})</span>}
              </figcaption>
              <Player kind={kind} value={found.value} title={`${metricKey} · ${run.name} · step ${found.step}`} />
              {found.value.caption && <span class="media-caption">{String(found.value.caption)}</span>}
            </figure>
          );
        })}
      </div>
    </>
  );
}

export function MediaPanel(props: { metricKey: string; kind: MediaKind; runs: MediaRun[] }): JSX.Element {
  const { metricKey, kind, runs } = props;
  const [box, visible] = useVisible<HTMLDivElement>();
  const [values, setValues] = useState<Map<string, MediaRunValues> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const signature = runs.map((r) => r.incarnation_id).join(",");
  useEffect(() => {
    if (!visible || !runs.length) return undefined;
    const controller = new AbortController();
    loadMedia(
      runs.map((r) => r.incarnation_id),
      metricKey,
      LIMITS[kind],
      controller.signal,
    ).then(
      (found) => {
        setError(null);
        setValues(new Map(found.map((run) => [run.incarnation_id, run])));
      },
      (err: unknown) => {
        if (!controller.signal.aborted) setError(errorText(err));
      },
    );
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [visible, signature, metricKey, kind]);

  const body = (): JSX.Element => {
    if (error) return <div class="chart-empty error">Could not load {metricKey}: {error}</div>;
    if (!values) return <div class="media-none" aria-busy="true">Loading…</div>;
    const shown = runs.filter((r) => (values.get(r.incarnation_id)?.steps.length ?? 0) > 0);
    if (!shown.length) return <div class="media-none">None of these runs logged {metricKey}.</div>;
    if (kind === "image") return <ImagePanel metricKey={metricKey} runs={shown} values={values} />;
    if (kind === "table") return <TablePanel metricKey={metricKey} runs={shown} values={values} />;
    if (kind === "histogram") return <HistogramPanel metricKey={metricKey} runs={shown} values={values} />;
    if (kind === "plot") return <PlotPanel metricKey={metricKey} runs={shown} values={values} />;
    return <FilePanel metricKey={metricKey} kind={kind} runs={shown} values={values} />;
  };

  return (
    <div ref={box} class={`panel media-panel media-${kind}`} data-metric={metricKey} data-media-kind={kind}>
      <div class="chart-title">
        <span>{metricKey}</span>
      </div>
      {body()}
    </div>
  );
}
