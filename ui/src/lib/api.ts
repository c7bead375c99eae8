// Typed wrappers over the app's Tauri commands and events. The Rust side decides
// everything; this file only names what it offers. The types are generated from the Rust
// ones into ./bindings (ts-rs; `cargo test -p countersign-app` fails when they are stale).
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { ActivityFilter } from "./bindings/ActivityFilter";
import type { AppStatus } from "./bindings/AppStatus";
import type { ClientsView } from "./bindings/ClientsView";
import type { CommandError } from "./bindings/CommandError";
import type { CredentialView } from "./bindings/CredentialView";
import type { Grant } from "./bindings/Grant";
import type { GrantLength } from "./bindings/GrantLength";
import type { PendingPrompt } from "./bindings/PendingPrompt";
import type { PolicyView } from "./bindings/PolicyView";
import type { ServerView } from "./bindings/ServerView";
import type { SettingsView } from "./bindings/SettingsView";
import type { FileOutcome } from "./bindings/FileOutcome";

export type {
  ActivityFilter,
  AppStatus,
  ClientsView,
  CommandError,
  CredentialView,
  Grant,
  GrantLength,
  PendingPrompt,
  PolicyView,
  ServerView,
  SettingsView,
};
export type { ClientView } from "./bindings/ClientView";
export type { HubEnrollment } from "./bindings/HubEnrollment";
export type { ToolView } from "./bindings/ToolView";

export type Verdict = "allow" | "deny";

/** An audit record as the journal writes it: JSON, with the fields the windows read. */
export type AuditRecord = Record<string, unknown> & {
  id: string;
  time: string;
  kind: string;
  client: string | null;
  server: string | null;
  tool: string | null;
  decision: string;
  rule: string | null;
  outcome: string | null;
  class: string | null;
};

/** What routing (or undoing) did to one client file. Written by hand: its Rust type
 * (`client_routing::FileOutcome`) is not generated yet (it is moving crates). */
/** One client file routed or put back (generated from `client_routing::FileOutcome`). */
export type RoutingOutcome = FileOutcome;

/** What a failed command says, for a person: a command rejects with a `CommandError`
 * (`{ kind, message }`), shown by its message; anything else by its text. */
export function errorText(e: unknown): string {
  if (typeof e === "object" && e !== null && typeof (e as CommandError).message === "string") {
    return (e as CommandError).message;
  }
  if (e instanceof Error) return e.message;
  if (typeof e === "object" && e !== null) return JSON.stringify(e);
  return String(e);
}

export const api = {
  status: () => invoke<AppStatus>("status"),
  pending: () => invoke<PendingPrompt[]>("pending"),
  /** `all`: how many identical waiting calls to release, the count shown (1: this one). */
  answer: (p: PendingPrompt, verdict: Verdict, length: GrantLength = "once", all = 1) =>
    invoke<void>("answer", { id: p.id, nonce: p.nonce, argsHash: p.args_hash, verdict, length, all }),
  /** Grants the scope the prompt offers as "Allow similar" (the gateway takes it from the prompt). */
  allowSimilar: (p: PendingPrompt) =>
    invoke<void>("answer", { id: p.id, nonce: p.nonce, argsHash: p.args_hash, verdict: "allow", similar: true }),
  grants: () => invoke<Grant[]>("grants"),
  revokeGrant: (id: string) => invoke<void>("revoke_grant", { id }),
  activity: (filter: ActivityFilter) => invoke<AuditRecord[]>("activity", { filter }),
  servers: () => invoke<ServerView[]>("servers"),
  acceptTools: (server: string, tools: string[]) => invoke<number>("accept_tools", { server, tools }),
  policy: () => invoke<PolicyView | null>("policy"),
  settings: () => invoke<SettingsView>("settings"),
  setPaused: (paused: boolean) => invoke<void>("set_paused", { paused }),
  takeOver: () => invoke<void>("take_over"),
  closeWindow: () => invoke<void>("close_main"),
  setStartAtLogin: (on: boolean) => invoke<void>("set_start_at_login", { on }),
  setToolClass: (server: string, tool: string, cls: string | null) =>
    invoke<void>("set_tool_class", { server, tool, class: cls }),
  credentials: () => invoke<CredentialView[]>("credentials"),
  signIn: (server: string) => invoke<string>("sign_in", { server }),
  signOut: (server: string) => invoke<number>("sign_out", { server }),
  importSecrets: () => invoke<number>("import_secrets"),
  clients: () => invoke<ClientsView>("clients"),
  routeClient: (client: string) => invoke<RoutingOutcome[]>("route_client", { client }),
  undoClient: (client: string) => invoke<RoutingOutcome[]>("undo_client", { client }),
};

export function onChange(event: "approvals-changed" | "activity-changed", run: () => void): Promise<UnlistenFn> {
  return listen(event, () => run());
}
