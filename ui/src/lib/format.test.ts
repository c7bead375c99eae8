import { describe, expect, it } from "vitest";
import {
  approverText,
  badge,
  countdown,
  credentialText,
  enrollmentText,
  fullArguments,
  outcomeLines,
  quoted,
  scopeText,
  serverTarget,
  stricterClasses,
  visible,
  waitingText,
  who,
} from "./format";
import shared from "../../../crates/policy/src/shown_cases.json";
import { errorText } from "./api";

describe("visible", () => {
  it("shows what the terminal and the notification show (the Rust side's cases)", () => {
    for (const [input, expected] of shared.cases) expect(visible(input)).toBe(expected);
  });

  it("hides exactly the code points the Rust side hides", () => {
    const hidden = shared.hidden.map(([lo, hi]) => [parseInt(lo.slice(2), 16), parseInt(hi.slice(2), 16)]);
    const isHidden = (cp: number) => hidden.some(([lo, hi]) => lo <= cp && cp <= hi);
    const wrong: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const c = String.fromCodePoint(cp);
      if ((visible(c) !== c) !== isHidden(cp)) wrong.push(cp.toString(16));
    }
    expect(wrong).toEqual([]);
  });

  it("keeps Countersign's own line breaks only when asked", () => {
    expect(visible("a\nb")).toBe("a\\nb");
    expect(visible("a\nb\u2028", true)).toBe("a\nb\\u{2028}");
    expect(quoted("x” — verified safe “")).toBe("“x\\u{201d} — verified safe \\u{201c}”");
  });
});

describe("who", () => {
  it("names the token, and what the client claims only as a claim", () => {
    expect(who({ client: "mallory", client_name: "trusted-bot" })).toBe("mallory (says it is “trusted-bot”)");
    expect(who({ client: "cursor", client_name: null })).toBe("cursor");
    expect(who({ client: "cursor", client_name: "cursor" })).toBe("cursor");
    expect(who({ client: "m", client_name: "Countersign\u202E" })).not.toMatch(/\u202E/u);
    expect(who({ client: "m", client_name: "x\nCountersign: verified safe read-only call" })).toBe(
      "m (says it is “x\\nCountersign: verified safe read-only call”)",
    );
  });
});

describe("waitingText", () => {
  it("says how many identical calls one approval releases", () => {
    expect(waitingText(1)).toBe("");
    expect(waitingText(5)).toBe("5 identical calls wait: Allow once runs one of them");
  });
});

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
    expect(text).toContain("\\u{202e}");
    expect(text).toContain("\\u{200b}");
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

describe("credentialText", () => {
  const now = 1_800_000_000_000;
  it("offers a sign-in when the server asks for one or the sign-in died", () => {
    expect(credentialText({ state: "none", asks_for_sign_in: true }, now)).toEqual({
      text: "Asks for a sign-in",
      action: "sign-in",
    });
    expect(credentialText({ state: "needs_sign_in", why: "no token is stored", asks_for_sign_in: false }, now).action).toBe(
      "sign-in",
    );
    expect(credentialText({ state: "none", asks_for_sign_in: false }, now).action).toBeNull();
  });
  it("says who signed in and when the token renews, and offers to sign out", () => {
    const c = credentialText(
      { state: "signed_in", issuer: "https://auth.example", expires_at: now / 1000 + 90, asks_for_sign_in: false },
      now,
    );
    expect(c.action).toBe("sign-out");
    expect(c.text).toContain("Signed in with https://auth.example");
    expect(c.text).toContain("token renews in 1m 30s");
  });
  it("shows a keychain problem without an action", () => {
    expect(credentialText({ state: "keychain_problem", why: "locked", asks_for_sign_in: false }, now)).toEqual({
      text: "Keychain problem: locked",
      action: null,
    });
  });
});

describe("outcomeLines", () => {
  it("says what moved, what stayed and what to do next", () => {
    const lines = outcomeLines([
      {
        file: "~/.cursor/mcp.json",
        changed: [{ name: "time", via: "http" }],
        skipped: [{ name: "notion", reason: "not allowed" }],
        sign_in: ["linear"],
        restart: "restart Cursor",
      },
      { file: "~/x.json", changed: [{ name: "fs", via: "direct" }] },
      { file: "~/y.json", changed: [], error: "broken" },
    ]);
    expect(lines).toEqual([
      "~/.cursor/mcp.json: time now through Countersign.",
      "notion not changed: not allowed.",
      "linear is a remote server: sign in from Servers & tools if it asks.",
      "To notice the change: restart Cursor.",
      "~/x.json: fs direct again.",
      "~/y.json: not changed: broken",
    ]);
  });

  it("shows a server's command line or its URL", () => {
    expect(serverTarget({ type: "stdio", command: "npx", args: ["-y", "x"] })).toBe("npx -y x");
    expect(serverTarget({ type: "remote", url: "https://a/mcp" })).toBe("https://a/mcp");
  });
});

describe("enrollmentText", () => {
  it("names the hub and the device, or says there is none", () => {
    expect(enrollmentText({ state: "enrolled", url: "https://hub.example", device_id: "dev-1" })).toBe(
      "Enrolled with https://hub.example as device dev-1",
    );
    expect(enrollmentText({ state: "not-enrolled" })).toBe("Not enrolled");
  });
});

describe("errorText", () => {
  it("shows a command's message, never [object Object]", () => {
    expect(errorText({ kind: "conflict", message: "the answer does not carry this prompt's nonce" })).toBe(
      "the answer does not carry this prompt's nonce",
    );
    expect(errorText("invalid args `nonce` for command `answer`")).toBe("invalid args `nonce` for command `answer`");
    expect(errorText(new Error("boom"))).toBe("boom");
    expect(errorText({ kind: "failed" })).not.toContain("[object");
  });
});

describe("approverText", () => {
  it("names who a routed approval waits for, hidden characters shown", () => {
    expect(approverText({ kind: "owner" })).toBe("the agent's owner");
    expect(approverText({ kind: "group", name: "it-approvers" })).toBe("a member of group it-approvers");
    expect(approverText({ kind: "person", name: "eve@example.com\u202e" })).toBe("eve@example.com\\u{202e}");
  });
});
