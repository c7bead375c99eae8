// Presentation only: how values read on screen. No decisions are made here.
import type { Approver } from "./bindings/Approver";
import type { HubEnrollment } from "./bindings/HubEnrollment";

/** "42s left", "2m 5s left", "expired". */
export function countdown(deadlineMs: number, nowMs: number): string {
  const left = Math.ceil((deadlineMs - nowMs) / 1000);
  if (left <= 0) return "expired";
  if (left < 60) return `${left}s left`;
  return `${Math.floor(left / 60)}m ${left % 60}s left`;
}

// Control, bidi, zero-width and other invisible characters: the same set as
// crates/policy/src/shown.rs (both are tested against crates/policy/src/shown_cases.json).
const HIDDEN =
  /[\u0000-\u001F\u007F-\u009F\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u2028-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB\u{110BD}\u{110CD}\u{13430}-\u{1343F}\u{1BCA0}-\u{1BCA3}\u{1D173}-\u{1D17A}\u{E0000}-\u{E0FFF}]/gu;

/** Text from others (names, arguments, paths) as a person should read it: every hidden
 * character as a visible escape (`\n`, `\u{202e}`), so no name draws a line of its own,
 * reorders what follows or hides a character. `keepLines`: keep line breaks, for text
 * Countersign itself laid out on lines (indented JSON, whose strings escape their own). */
export function visible(text: string, keepLines = false): string {
  return text.replace(HIDDEN, (c) => {
    if (c === "\n") return keepLines ? c : "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    return `\\u{${c.codePointAt(0)!.toString(16)}}`;
  });
}

/** A name as a quoted field: “…”, visible, with quotation marks inside shown as escapes. */
export function quoted(text: string): string {
  return `“${visible(text).replaceAll("“", "\\u{201c}").replaceAll("”", "\\u{201d}")}”`;
}

/** A value laid out as indented JSON, hidden characters made visible. */
export function shownJson(value: unknown): string {
  return visible(JSON.stringify(value, null, 2) ?? "null", true);
}

/** Full arguments as indented JSON, with invisible and control characters made visible. */
export function fullArguments(args: unknown): string {
  return shownJson(args);
}

/** A grant's scope in words. */
export function scopeText(scope: { kind: string; expires_ms?: number }, nowMs: number): string {
  switch (scope.kind) {
    case "once":
      return "once, for the exact arguments";
    case "session":
      return "for this session";
    case "until":
      return scope.expires_ms ? `until ${new Date(scope.expires_ms).toLocaleTimeString()} (${countdown(scope.expires_ms, nowMs)})` : "timed";
    default:
      return scope.kind;
  }
}

/** The CSS class for a decision or tool class badge. */
export function badge(kind: string | null | undefined): string {
  switch (kind) {
    case "allow":
    case "read":
    case "ok":
      return "badge ok";
    case "ask":
    case "write":
    case "sensitive":
      return "badge ask";
    case "deny":
    case "destructive":
    case "denied":
    case "rejected":
    case "error":
    case "timeout":
      return "badge deny";
    default:
      return "badge";
  }
}

export const LENGTH_LABELS: Record<string, string> = {
  once: "Allow once",
  session: "Allow for this session",
  "15m": "Allow for 15 minutes",
  "1h": "Allow for 1 hour",
  today: "Allow for today",
};

const CLASS_ORDER = ["read", "write", "sensitive", "destructive"];

/** The classes a user may choose for a tool: only ones stricter than what it is now. */
export function stricterClasses(current: string): string[] {
  const at = CLASS_ORDER.indexOf(current);
  return at < 0 ? [] : CLASS_ORDER.slice(at + 1);
}

/** What the Servers window says of a remote server's credentials, and which action it offers. */
export function credentialText(
  c: { state: string; issuer?: string | null; expires_at?: number | null; why?: string; asks_for_sign_in: boolean },
  nowMs: number,
): { text: string; action: "sign-in" | "sign-out" | null } {
  switch (c.state) {
    case "signed_in": {
      const by = c.issuer ? ` with ${c.issuer}` : "";
      if (c.expires_at == null) return { text: `Signed in${by}`, action: "sign-out" };
      const left = c.expires_at * 1000 - nowMs;
      const when =
        left > 0 ? `token renews in ${countdown(c.expires_at * 1000, nowMs).replace(/ left$/, "")}` : "token renews on next use";
      return { text: `Signed in${by}; ${when}`, action: "sign-out" };
    }
    case "needs_sign_in":
      return { text: `Needs a sign-in: ${c.why ?? ""}`.trim(), action: "sign-in" };
    case "keychain_problem":
      return { text: `Keychain problem: ${c.why ?? ""}`.trim(), action: null };
    default:
      return c.asks_for_sign_in
        ? { text: "Asks for a sign-in", action: "sign-in" }
        : { text: "No sign-in needed", action: null };
  }
}

/** What a client's server starts or reaches: `npx -y pkg` or its URL. */
export function serverTarget(s: { type: string; command?: string; args?: string[]; url?: string }): string {
  return s.type === "remote" ? (s.url ?? "") : [s.command ?? "", ...(s.args ?? [])].join(" ");
}

/** One line per thing a person should know after routing or undoing a client. */
export function outcomeLines(
  outcomes: {
    file: string;
    changed: { name: string; via: string }[];
    skipped?: { name: string; reason: string }[];
    restart?: string;
    sign_in?: string[];
    error?: string;
  }[],
): string[] {
  const lines: string[] = [];
  for (const o of outcomes) {
    if (o.error) lines.push(`${o.file}: not changed: ${o.error}`);
    const moved = o.changed.map((m) => m.name);
    if (moved.length > 0) {
      const how = o.changed.every((m) => m.via === "direct") ? "direct again" : "now through Countersign";
      lines.push(`${o.file}: ${moved.join(", ")} ${how}.`);
    }
    for (const s of o.skipped ?? []) lines.push(`${s.name} not changed: ${s.reason}.`);
    for (const s of o.sign_in ?? []) lines.push(`${s} is a remote server: sign in from Servers & tools if it asks.`);
    if (o.restart) lines.push(`To notice the change: ${o.restart}.`);
  }
  return lines;
}

/** Who asks for an approval: the client's token name; what the client says it is only as
 * a claim (anyone can claim any name in `initialize`). Hidden characters are shown. */
export function who(p: { client: string; client_name: string | null }): string {
  const claim = p.client_name && p.client_name !== p.client ? p.client_name : null;
  return claim ? `${visible(p.client)} (says it is ${quoted(claim)})` : visible(p.client);
}

/** What approving does when identical calls wait on one prompt. */
export function waitingText(waiting: number): string {
  return waiting > 1 ? `${waiting} identical calls wait: Allow once runs one of them` : "";
}

/** Who a routed approval waits for, as a person reads it. */
export function approverText(a: Approver): string {
  switch (a.kind) {
    case "self":
      return "you";
    case "owner":
      return "the agent's owner";
    case "manager":
      return "your manager";
    case "person":
      return visible(a.name);
    case "group":
      return `a member of group ${visible(a.name)}`;
  }
}

/** "Not enrolled", or the hub and this device's id there. */
export function enrollmentText(hub: HubEnrollment): string {
  return hub.state === "enrolled" ? `Enrolled with ${hub.url} as device ${hub.device_id}` : "Not enrolled";
}
