// Many runs on one uPlot chart need one shared x array. The exact union of every run's x values
// grows with runs × points (downsampled runs keep their extremes at different steps), and uPlot
// then draws runs × union cells. Past a size, the runs are placed on a grid of three slots per
// column instead: each column keeps a run's minimum and maximum and, where the run has one there,
// a gap (null), all in their order. What is drawn is the same at screen resolution while the
// data stays runs × 3 × columns.
import uPlot from "uplot";

type Column = (number | null | undefined)[];

/** Columns of the grid: finer than any chart is wide, so a slot is under a pixel. */
export const GRID_COLUMNS = 1000;
const SLOTS = 3;

export function alignTables(tables: uPlot.AlignedData[], columns = GRID_COLUMNS): uPlot.AlignedData {
  let total = 0;
  let low = Infinity;
  let high = -Infinity;
  for (const table of tables) {
    const xs = table[0] as number[];
    total += xs.length;
    if (xs.length) {
      low = Math.min(low, xs[0]);
      high = Math.max(high, xs[xs.length - 1]);
    }
  }
  // Small charts, or one x value: the exact union is cheap.
  if (total <= columns * 4 || !(high > low)) return uPlot.join(tables);

  const slots = columns * SLOTS;
  const span = high - low;
  const gridX = new Array<number>(slots);
  for (let slot = 0; slot < slots; slot += 1) {
    // A column's slots sit at its first, middle and last sixth.
    gridX[slot] = low + ((Math.floor(slot / SLOTS) + ((slot % SLOTS) * 2 + 1) / (2 * SLOTS)) / columns) * span;
  }
  const scale = columns / span;
  const out: Column[] = [gridX];
  for (const table of tables) {
    const xs = table[0] as number[];
    const ys = table.slice(1) as Column[];
    const placed: Column[] = ys.map(() => new Array(slots));
    const lead = ys[0];
    const n = xs.length;
    let i = 0;
    while (i < n) {
      const column = Math.min(columns - 1, Math.floor((xs[i] - low) * scale));
      // The column's lowest and highest points of the run's main line, and its first gap.
      let lo = -1;
      let hi = -1;
      let gap = -1;
      let loValue = Infinity;
      let hiValue = -Infinity;
      for (; i < n && Math.min(columns - 1, Math.floor((xs[i] - low) * scale)) === column; i += 1) {
        const v = lead[i];
        if (v === null) {
          if (gap < 0) gap = i;
        } else if (v !== undefined) {
          if (v < loValue) {
            loValue = v;
            lo = i;
          }
          if (v > hiValue) {
            hiValue = v;
            hi = i;
          }
        }
      }
      // Up to three points, in their order: the two extremes and the gap.
      let a = lo <= hi ? lo : hi;
      let b = lo <= hi ? hi : lo;
      if (a === b) b = -1;
      if (a < 0) {
        a = b;
        b = -1;
      }
      let slot = column * SLOTS;
      for (const index of gap < 0 ? [a, b] : gap < a || a < 0 ? [gap, a, b] : gap < b || b < 0 ? [a, gap, b] : [a, b, gap]) {
        if (index < 0) continue;
        for (let k = 0; k < ys.length; k += 1) placed[k][slot] = index === gap ? null : ys[k][index];
        slot += 1;
      }
    }
    out.push(...placed);
  }
  return out as uPlot.AlignedData;
}
