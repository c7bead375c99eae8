import { describe, expect, it } from "vitest";
import { badge, countdown, fullArguments, scopeText, stricterClasses } from "./format";

describe("countdown", () => {
  it("counts seconds, then minutes, then says expired", () => {
    expect(countdown(10_000, 0)).toBe("10s left");
    expect(countdown(125_000, 0)).toBe("2m 5s left");
    expect(countdown(0, 1)).toBe("expired");
  });
});

describe("fullArguments", () => {
  it("shows every argument and makes hidden characters visible", () => {
    const text = fullArguments({ path: "/tmp/a\u202Etxt.exe", note: "x\u200By" });
    expect(text).toContain('"path"');
    expect(text).toContain("\\u{202E}");
    expect(text).toContain("\\u{200B}");
    expect(text).not.toMatch(/[\u202E\u200B]/u);
  });
});

describe("scopeText and badge", () => {
  it("names grant scopes and decision badges", () => {
    expect(scopeText({ kind: "session" }, 0)).toBe("for this session");
    expect(scopeText({ kind: "once" }, 0)).toContain("exact arguments");
    expect(badge("deny")).toBe("badge deny");
    expect(badge("read")).toBe("badge ok");
    expect(badge(undefined)).toBe("badge");
  });
});

describe("stricterClasses", () => {
  it("offers only stricter classes", () => {
    expect(stricterClasses("write")).toEqual(["sensitive", "destructive"]);
    expect(stricterClasses("destructive")).toEqual([]);
    expect(stricterClasses("unknown")).toEqual([]);
  });
});
