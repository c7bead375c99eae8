import { describe, expect, it } from "vitest";
import type { AuditRecord, Device } from "./api";
import { ago, callsPerDay, online, topTools } from "./summary";
import { auditQuery } from "./api";

const rec = (time: string, decision: string, tool = "write_file", kind = "call"): AuditRecord => ({
  id: time + tool, seq: 1, time, kind, user: "u", device: "d", client: null, server: "fs", tool, decision,
  class: null, approver: null, reason: null, outcome: null, arguments: null,
});

describe("overview figures", () => {
  const now = new Date("2026-12-02T12:00:00Z");
  it("counts calls per day by decision, policy records left out, old days dropped", () => {
    const days = callsPerDay([
      rec("2026-12-02T01:00:00Z", "allow"), rec("2026-12-02T02:00:00Z", "deny"),
      rec("2026-12-01T23:59:59Z", "ask"), rec("2026-11-01T00:00:00Z", "allow"),
      rec("2026-12-02T03:00:00Z", "allow", "x", "policy"),
    ], now, 3);
    expect(days).toEqual([
      { day: "2026-11-30", allow: 0, ask: 0, deny: 0 },
      { day: "2026-12-01", allow: 0, ask: 1, deny: 0 },
      { day: "2026-12-02", allow: 1, ask: 0, deny: 1 },
    ]);
  });
  it("ranks tools by calls", () => {
    const top = topTools([rec("t1", "allow", "a"), rec("t2", "allow", "b"), rec("t3", "deny", "b")]);
    expect(top).toEqual([{ tool: "fs.b", calls: 2 }, { tool: "fs.a", calls: 1 }]);
  });
  it("counts devices online, never a revoked one", () => {
    const d = (last_seen: string | null, revoked_at: string | null = null): Device => ({
      id: "i", name: "n", enrolled_at: "", last_seq: null, last_seen, person: null, assigned_user: null,
      agent: null, revoked_at, revoked_why: null,
    });
    expect(online([d("2026-12-02T11:55:00Z"), d("2026-12-02T10:00:00Z"), d(null),
                   d("2026-12-02T11:59:00Z", "2026-12-02T11:59:30Z")], now)).toBe(1);
  });
  it("says how long ago", () => {
    expect(ago(null, now)).toBe("never");
    expect(ago("2026-12-02T11:59:30Z", now)).toBe("30 s ago");
    expect(ago("2026-12-02T09:00:00Z", now)).toBe("3 h ago");
  });
});

describe("audit query", () => {
  it("sends only the filters given, trimmed, and local times as RFC 3339", () => {
    const q = new URLSearchParams(auditQuery({ user: " ana@example.com ", tool: "", from: "2026-12-02T10:00" }, 50));
    expect(q.get("user")).toBe("ana@example.com");
    expect(q.has("tool")).toBe(false);
    expect(q.get("from")).toBe(new Date("2026-12-02T10:00").toISOString());
    expect(q.get("limit")).toBe("50");
  });
});
