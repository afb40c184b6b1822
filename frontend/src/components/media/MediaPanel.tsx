// A workspace panel for one media history key (images, tables, histograms, plots, audio, video, HTML).
import type { JSX } from "preact";

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

export function MediaPanel(props: { metricKey: string; kind: MediaKind; runs: MediaRun[] }): JSX.Element {
  return (
    <div class="panel media-panel" data-metric={props.metricKey} data-media-kind={props.kind}>
      <span class="chart-title">{props.metricKey}</span>
    </div>
  );
}
