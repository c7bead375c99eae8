import { describe, expect, it } from "vitest";
import { changed, lineDiff, MAX_DIFF_LINES } from "./diff";

describe("line diff", () => {
  it("marks what was added and removed, in order", () => {
    const d = lineDiff("[policy]\ndeny = [\"a\"]\nask = []", "[policy]\ndeny = [\"a\", \"b\"]\nask = []\nallow = []");
    expect(d).toEqual([
      { kind: "same", text: "[policy]" },
      { kind: "removed", text: "deny = [\"a\"]" },
      { kind: "added", text: "deny = [\"a\", \"b\"]" },
      { kind: "same", text: "ask = []" },
      { kind: "added", text: "allow = []" },
    ]);
    expect(changed(d)).toBe(true);
    expect(changed(lineDiff("x\ny", "x\ny"))).toBe(false);
    const huge = "# x\n".repeat(MAX_DIFF_LINES + 1);
    expect(lineDiff(huge, "[policy]")).toBeNull();
  });
});
