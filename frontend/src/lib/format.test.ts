import { afterEach, describe, expect, it, vi } from "vitest";
import { formatAgo, formatBytes, formatDuration, formatNumber, formatValue, parseTruncMode, truncate, truncateName } from "./format";

describe("format", () => {
  afterEach(() => vi.useRealTimers());

  it("formats durations from milliseconds to days", () => {
    expect(formatDuration(0.25)).toBe("250ms");
    expect(formatDuration(5.25)).toBe("5.3s");
    expect(formatDuration(42)).toBe("42s");
    expect(formatDuration(125)).toBe("2m 5s");
    expect(formatDuration(3 * 3600 + 60)).toBe("3h 1m");
    expect(formatDuration(2 * 86400 + 3600)).toBe("2d 1h");
    expect(formatDuration(-1)).toBe("–");
    expect(formatDuration(Number.NaN)).toBe("–");
  });

  it("formats sizes in binary units", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(200 * 1024 * 1024)).toBe("200 MB");
    expect(formatBytes(3 * 1024 ** 5)).toBe("3072 TB");
  });

  it("formats numbers compactly", () => {
    expect(formatNumber(1234567)).toBe("1,234,567");
    expect(formatNumber(0.123456789)).toBe("0.12346");
    expect(formatNumber(1.5e-7)).toBe("1.5e-7");
    expect(formatNumber(Number.POSITIVE_INFINITY)).toBe("Infinity");
  });

  it("formats values of any kind", () => {
    expect(formatValue(null)).toBe("–");
    expect(formatValue(true)).toBe("true");
    expect(formatValue("text")).toBe("text");
    expect(formatValue({ _type: "image" })).toBe("⟨image⟩");
    expect(formatValue([1, 2])).toBe("[1,2]");
  });

  it("says how long ago", () => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date(1_700_000_000_000));
    const now = 1_700_000_000;
    expect(formatAgo(null)).toBe("never");
    expect(formatAgo(now - 10)).toBe("just now");
    expect(formatAgo(now - 600)).toBe("10 min ago");
    expect(formatAgo(now - 7200)).toBe("2 h ago");
    expect(formatAgo(now - 3 * 86400)).toBe("3 days ago");
  });

  it("truncates at the start, middle or end", () => {
    expect(truncate("abcdefghij", 5, "start")).toBe("…ghij");
    expect(truncate("abcdefghij", 5, "middle")).toBe("ab…ij");
    expect(truncate("abcdefghij", 5, "end")).toBe("abcd…");
    expect(truncate("abc", 5, "end")).toBe("abc");
  });

  it("truncates run names in the middle by default, keeping both ends", () => {
    expect(truncateName("resnet-adam-sweep-fork-3", 16)).toBe("resnet-a…-fork-3");
    expect(truncateName("resnet-adam-sweep-fork-3", 16, "end")).toBe("resnet-adam-swe…");
    expect(truncateName("resnet-adam-sweep-fork-3", 16, "start")).toBe("…am-sweep-fork-3");
    expect(truncateName("short", 16)).toBe("short");
    expect(truncateName("resnet-adam-sweep-fork-3", 16).length).toBe(16);
    expect(parseTruncMode(null)).toBe("middle");
    expect(parseTruncMode("beginning")).toBe("start");
    expect(parseTruncMode("end")).toBe("end");
    expect(parseTruncMode("bogus")).toBe("middle");
  });
});
