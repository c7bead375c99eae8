// Presentation only: what the Overview shows, computed from records the hub returned.
import type { AuditRecord, Device } from "./api";

export interface DayCount {
  day: string;
  allow: number;
  ask: number;
  deny: number;
}

/** Calls per day by decision, oldest day first, the last `days` days up to `now`. */
export function callsPerDay(records: AuditRecord[], now: Date, days = 7): DayCount[] {
  const out: DayCount[] = [];
  for (let i = days - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - i));
    out.push({ day: d.toISOString().slice(0, 10), allow: 0, ask: 0, deny: 0 });
  }
  const byDay = new Map(out.map((d) => [d.day, d]));
  for (const r of records) {
    if (r.kind !== "call") continue;
    const slot = byDay.get(r.time.slice(0, 10));
    if (slot && (r.decision === "allow" || r.decision === "ask" || r.decision === "deny")) slot[r.decision] += 1;
  }
  return out;
}

/** The most called tools, as `server.tool`, busiest first. */
export function topTools(records: AuditRecord[], n = 5): { tool: string; calls: number }[] {
  const counts = new Map<string, number>();
  for (const r of records) {
    if (r.kind !== "call" || !r.tool) continue;
    const key = `${r.server ?? "?"}.${r.tool}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts.entries()]
    .map(([tool, calls]) => ({ tool, calls }))
    .sort((a, b) => b.calls - a.calls || a.tool.localeCompare(b.tool))
    .slice(0, n);
}

/** A device counts as online when it synced within `minutes`. */
export function online(devices: Device[], now: Date, minutes = 10): number {
  const since = now.getTime() - minutes * 60_000;
  return devices.filter((d) => !d.revoked_at && d.last_seen && Date.parse(d.last_seen) >= since).length;
}

/** "3 min ago", "2 h ago", "never". */
export function ago(time: string | null, now: Date): string {
  if (!time) return "never";
  const s = Math.max(0, Math.round((now.getTime() - Date.parse(time)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
