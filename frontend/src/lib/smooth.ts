// Exponential moving average with debiasing (the first points are not pulled towards zero).

export function ema(values: (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) return values;
  const out: (number | null)[] = new Array(values.length);
  let last = 0;
  let count = 0;
  for (let i = 0; i < values.length; i += 1) {
    const value = values[i];
    if (value === null || !Number.isFinite(value)) {
      out[i] = null;
      continue;
    }
    last = last * weight + (1 - weight) * value;
    count += 1;
    out[i] = last / (1 - Math.pow(weight, count));
  }
  return out;
}
