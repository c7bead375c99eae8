// The console is a client of the hub's own API (the OpenAPI routes under /v1), with the
// session cookie the sign-in set: same origin, so the browser sends it, and every
// request that changes something carries the page's Origin (the hub's CSRF check).
// Nothing here decides who may see what: the hub checks every route's role.

export interface Who {
  actor: string;
  roles: string[];
}

export interface Device {
  id: string;
  name: string;
  enrolled_at: string;
  last_seq: number | null;
  last_seen: string | null;
  person: string | null;
  assigned_user: string | null;
  agent: string | null;
  revoked_at: string | null;
  revoked_why: string | null;
}

export interface AuditRecord {
  id: string;
  seq: number;
  time: string;
  kind: string;
  user: string;
  device: string;
  client: string | null;
  server: string | null;
  tool: string | null;
  decision: string;
  class: string | null;
  approver: string | null;
  reason: string | null;
  outcome: string | null;
  /** As the hub returns it: the recorded arguments (JSON), redacted as records are. */
  arguments: unknown;
}

export interface Alert {
  id: string;
  time: string;
  device_id: string | null;
  kind: string;
  detail: string;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  note: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function get<T>(path: string): Promise<T> {
  return send<T>("GET", path);
}

/** A request to the hub; a body is sent as text (a policy's TOML). */
async function send<T>(method: string, path: string, body?: string): Promise<T> {
  const r = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
      ...(body === undefined ? {} : { "Content-Type": body.startsWith("{") ? "application/json" : "text/plain" }),
    },
    body,
  });
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    throw new ApiError(r.status, typeof body.error === "string" ? body.error : `${r.status} ${r.statusText}`);
  }
  return (await r.json()) as T;
}

/** The audit filters the hub takes (`/v1/audit`), each an exact match. */
export const AUDIT_FILTERS = ["user", "device", "client", "server", "tool", "decision", "approver", "owner"] as const;
export type AuditFilter = Partial<Record<(typeof AUDIT_FILTERS)[number] | "from" | "to", string>>;

export function auditQuery(filter: AuditFilter, limit: number): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filter)) {
    if (!v || !v.trim()) continue;
    // A date-time input has no zone: the person's local time, sent as RFC 3339.
    const value = (k === "from" || k === "to") && !/[zZ]|[+-]\d\d:\d\d$/.test(v) ? new Date(v).toISOString() : v.trim();
    q.set(k, value);
  }
  q.set("limit", String(limit));
  return q.toString();
}

export interface PublishedPolicy {
  version: number;
  published_at: string;
  policy: string;
}

export interface Change {
  from: string;
  to: string;
  calls: number;
}

export interface Impact {
  days: number;
  against_version: number | null;
  took_ms: number;
  truncated: boolean;
  people_shown: boolean;
  impact: {
    calls: number;
    changed: number;
    by_change: Change[];
    by_tool: { name: string; changes: Change[] }[];
    by_person: { name: string; changes: Change[] }[];
    examples: { id: string; time: string; user: string; tool: string; from: string; to: string; rule: string }[];
  };
}

export interface WaitingRequest {
  id: string;
  requester: string;
  device_name: string;
  client: string;
  server: string;
  tool: string;
  class: string;
  arguments: unknown;
  args_hash: string;
  rule: string | null;
  reason: string;
  approver: string;
  deadline_ms: number;
  nonce: string;
}

export interface Agent {
  name: string;
  owner: string;
  approvers: string[];
  purpose: string | null;
  review_date: string | null;
  suspended_at: string | null;
  suspended_why: string | null;
  review_overdue: boolean;
}

export interface Entitled {
  user: string;
  devices: string[];
  clients: string[];
  tools: { server: string; tool: string; calls: number; allowed: number; refused: number; last_used: string;
           approved_by: Record<string, number> }[];
  grants: { id: string; server: string; tool: string; length: string; issued: string; expires: string | null;
            active: boolean }[];
}

export const api = {
  whoami: () => get<Who>("/v1/auth/whoami"),
  devices: () => get<Device[]>("/v1/devices"),
  alerts: () => get<Alert[]>("/v1/alerts"),
  audit: (filter: AuditFilter, limit = 200) => get<AuditRecord[]>(`/v1/audit?${auditQuery(filter, limit)}`),
  /** One page newest first; `next` starts the page after it (none: the last page). */
  async auditPage(filter: AuditFilter, limit: number, before?: string): Promise<{ records: AuditRecord[]; next: string | null }> {
    const q = `${auditQuery(filter, limit)}&order=newest${before ? `&before=${encodeURIComponent(before)}` : ""}`;
    const r = await fetch(`/v1/audit?${q}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new ApiError(r.status, typeof body.error === "string" ? body.error : `${r.status} ${r.statusText}`);
    }
    return { records: (await r.json()) as AuditRecord[], next: r.headers.get("x-next-cursor") };
  },
  exportUrl: (filter: AuditFilter, format: "csv" | "json") =>
    `/v1/audit?${auditQuery(filter, 100000)}&format=${format}`,
  policy: () => get<PublishedPolicy>("/v1/policy"),
  policyHistory: () => get<{ version: number; published_at: string }[]>("/v1/policy/history"),
  policyVersion: (v: number) => get<PublishedPolicy>(`/v1/policy/versions/${v}`),
  checkPolicy: (draft: string) => send<{ ok: boolean }>("POST", "/v1/policy/check", draft),
  previewPolicy: (draft: string, days: number) => send<Impact>("POST", `/v1/policy/preview?days=${days}`, draft),
  publishPolicy: (draft: string) => send<{ version: number; published_at: string }>("PUT", "/v1/policy", draft),
  agents: () => get<Agent[]>("/v1/agents"),
  entitlements: () => get<Entitled[]>("/v1/entitlements"),
  changeAgent: (name: string, action: "suspend" | "resume" | "transfer", body: Record<string, string>) =>
    send<unknown>("POST", `/v1/agents/${encodeURIComponent(name)}/${action}`, JSON.stringify(body)),
  revokeDevice: (id: string, why: string) =>
    send<unknown>("POST", `/v1/devices/${encodeURIComponent(id)}/revoke`, JSON.stringify({ why })),
  acknowledgeAlert: (id: string, note: string) =>
    send<unknown>("POST", `/v1/alerts/${encodeURIComponent(id)}/acknowledge`, JSON.stringify({ note })),
  myApprovals: () => get<WaitingRequest[]>("/v1/my-approvals"),
  answerApproval: (r: WaitingRequest, verdict: "allow" | "deny") =>
    send<{ state: string }>("POST", `/v1/my-approvals/${encodeURIComponent(r.id)}`,
      JSON.stringify({ verdict, nonce: r.nonce, args_hash: r.args_hash })),
  async logout(): Promise<void> {
    await fetch("/v1/auth/logout", { method: "POST", credentials: "same-origin" });
  },
};
