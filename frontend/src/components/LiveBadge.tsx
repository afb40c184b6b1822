// "Live": a shown run is running, and its charts append the points it logs (lib/seriesCache.ts).
export function LiveBadge({ live, title = "A shown run is running: its charts update as it logs" }: { live: boolean; title?: string }) {
  if (!live) return null;
  return (
    <span class="live-badge" data-testid="live-badge" role="status" title={title}>
      <span aria-hidden="true" />
      Live
    </span>
  );
}
