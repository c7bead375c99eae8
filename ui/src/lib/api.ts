// Typed wrappers over the app's Tauri commands and events. The Rust side decides
// everything; this file only names what it offers.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

export type Verdict = "allow" | "deny";
export type GrantLength = "once" | "session" | "15m" | "1h" | "today";

export interface PendingPrompt {
  id: string;
  session: string;
  client: string;
  client_name: string | null;
  server: string;
  tool: string;
  arguments: unknown;
  args_hash: string;
  reason: string;
  deadline_ms: number;
  /** Identical calls waiting on this prompt. */
  waiting: number;
  nonce: string;
  summary: string;
}

export interface AppStatus {
  listen: string | null;
  gateway_error: string | null;
  paused: boolean;
  pending: number;
  policy_version: string;
  grant_lengths: GrantLength[];
  plaintext_secrets: string[];
  routing_warning: string | null;
  /** Set while the managed policy bundle in force has expired. */
  policy_warning: string | null;
}

export interface Grant {
  id: string;
  client_token: string;
  server: string;
  tool: string;
  scope: { kind: string; expires_ms?: number; session?: string; args_hash?: string };
  condition: string | null;
  created_ms: number;
}

export interface ActivityFilter {
  client?: string;
  server?: string;
  tool?: string;
  decision?: string;
}

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

export interface ToolView {
  name: string;
  class: string;
  source: string;
  reason: string;
  label: string | null;
  state: string;
  detail: string[];
  locked: string | null;
  user_class: string | null;
}

export interface ServerView {
  name: string;
  transport: string;
  trusted: boolean;
  catalog: string | null;
  tools: ToolView[];
}

/** One remote server's credentials, as the keychain holds them (never a token). */
export interface CredentialView {
  server: string;
  url: string;
  state: "none" | "signed_in" | "needs_sign_in" | "keychain_problem";
  issuer?: string | null;
  expires_at?: number | null;
  scopes?: string[];
  why?: string;
  asks_for_sign_in: boolean;
}

/** One server in an AI client's file, and how it reaches its server. */
export interface ClientServer {
  name: string;
  type: "stdio" | "remote";
  command?: string;
  args?: string[];
  url?: string;
  enabled: boolean;
  project?: string;
  route: "routed" | "shadow" | "blocked";
}

export interface ClientFile {
  file: string;
  scope: "user" | "project";
  project?: string;
  servers: ClientServer[];
  error?: string;
}

export interface ClientView {
  client: string;
  name: string;
  files: ClientFile[];
  shadow: number;
  undoable: number;
}

export interface ClientsView {
  clients: ClientView[];
  warning: string | null;
}

/** What routing (or undoing) did to one client file. */
export interface RoutingOutcome {
  client: string;
  client_name: string;
  file: string;
  changed: { name: string; server: string; via: "shim" | "http" | "direct" }[];
  skipped?: { name: string; reason: string }[];
  backup?: string;
  restart?: string;
  sign_in?: string[];
  error?: string;
}

export const api = {
  status: () => invoke<AppStatus>("status"),
  pending: () => invoke<PendingPrompt[]>("pending"),
  /** `all`: how many identical waiting calls to release, the count shown (1: this one). */
  answer: (p: PendingPrompt, verdict: Verdict, length: GrantLength = "once", all = 1) =>
    invoke<void>("answer", { id: p.id, nonce: p.nonce, argsHash: p.args_hash, verdict, length, all }),
  grants: () => invoke<Grant[]>("grants"),
  revokeGrant: (id: string) => invoke<void>("revoke_grant", { id }),
  activity: (filter: ActivityFilter) => invoke<AuditRecord[]>("activity", { filter }),
  servers: () => invoke<ServerView[]>("servers"),
  acceptTools: (server: string, tools: string[]) => invoke<number>("accept_tools", { server, tools }),
  policy: () => invoke<Record<string, unknown>>("policy"),
  settings: () => invoke<Record<string, unknown>>("settings"),
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
