// ANSI SGR escape sequences (colours, bold, underline) turned into styled text segments.

export interface Segment {
  text: string;
  fg?: string;
  bg?: string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
}

const BASIC = ["#4d4d4d", "#d1383d", "#3a9a3a", "#b8860b", "#3f6fd8", "#b04cc2", "#1e9aa8", "#bfbfbf"];
const BRIGHT = ["#808080", "#ff5c5c", "#4ec94e", "#e5c040", "#6b9bff", "#e07ae8", "#45d0df", "#ffffff"];
// eslint-disable-next-line no-control-regex
const ESCAPE = /\x1b\[([0-9;]*)([A-Za-z])/g;

function color256(n: number): string {
  if (n < 8) return BASIC[n];
  if (n < 16) return BRIGHT[n - 8];
  if (n >= 232) {
    const level = 8 + (n - 232) * 10;
    return `rgb(${level},${level},${level})`;
  }
  const i = n - 16;
  const steps = [0, 95, 135, 175, 215, 255];
  return `rgb(${steps[Math.floor(i / 36)]},${steps[Math.floor(i / 6) % 6]},${steps[i % 6]})`;
}

export function stripAnsi(text: string): string {
  return text.replace(ESCAPE, "");
}

export function parseAnsi(text: string): Segment[] {
  const segments: Segment[] = [];
  let style: Omit<Segment, "text"> = {};
  let last = 0;
  ESCAPE.lastIndex = 0;
  for (let match = ESCAPE.exec(text); match; match = ESCAPE.exec(text)) {
    if (match.index > last) segments.push({ text: text.slice(last, match.index), ...style });
    last = ESCAPE.lastIndex;
    if (match[2] !== "m") continue;
    const codes = match[1] === "" ? [0] : match[1].split(";").map((c) => Number(c));
    for (let i = 0; i < codes.length; i += 1) {
      const code = codes[i];
      if (code === 0) style = {};
      else if (code === 1) style = { ...style, bold: true };
      else if (code === 2) style = { ...style, dim: true };
      else if (code === 3) style = { ...style, italic: true };
      else if (code === 4) style = { ...style, underline: true };
      else if (code === 22) style = { ...style, bold: false, dim: false };
      else if (code === 23) style = { ...style, italic: false };
      else if (code === 24) style = { ...style, underline: false };
      else if (code >= 30 && code <= 37) style = { ...style, fg: BASIC[code - 30] };
      else if (code === 39) style = { ...style, fg: undefined };
      else if (code >= 40 && code <= 47) style = { ...style, bg: BASIC[code - 40] };
      else if (code === 49) style = { ...style, bg: undefined };
      else if (code >= 90 && code <= 97) style = { ...style, fg: BRIGHT[code - 90] };
      else if (code >= 100 && code <= 107) style = { ...style, bg: BRIGHT[code - 100] };
      else if ((code === 38 || code === 48) && codes[i + 1] === 5) {
        const value = color256(codes[i + 2] ?? 0);
        style = code === 38 ? { ...style, fg: value } : { ...style, bg: value };
        i += 2;
      } else if ((code === 38 || code === 48) && codes[i + 1] === 2) {
        const value = `rgb(${codes[i + 2] ?? 0},${codes[i + 3] ?? 0},${codes[i + 4] ?? 0})`;
        style = code === 38 ? { ...style, fg: value } : { ...style, bg: value };
        i += 4;
      }
    }
  }
  if (last < text.length) segments.push({ text: text.slice(last), ...style });
  return segments;
}
