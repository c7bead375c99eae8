//! The entitlements view for access reviews: for every identity (the employee's user
//! name; enterprise agents appear under their own user and client token), which servers
//! and tools it used (calls allowed and refused, last use) and which grants approvals
//! left it (the records whose approval issued a grant: `grant_id` and `grant_length`),
//! with when each ends. As JSON, or CSV with one row per identity, server and tool.
//!
//! Records stored before the grant columns existed, or sent by a device older than them
//! (`grant_columns = 0`), name their grant only in the reason's text
//! (`approved for 1h, grant g-…`), which is read for those alone: a reason can quote a
//! tool's name, which its server chooses, so it is never read where the columns say.

use crate::db::{Db, DbError};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize, PartialEq)]
pub struct ToolUse {
    pub server: String,
    pub tool: String,
    pub calls: i64,
    /// Calls that ran: allowed by policy, or approved by the person.
    pub allowed: i64,
    pub refused: i64,
    pub last_used: String,
    /// Who approved its calls that asked (`self`, or the verified identities who
    /// answered routed approvals), with how many each.
    pub approved_by: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct GrantHeld {
    pub id: String,
    pub server: String,
    pub tool: String,
    /// `session`, `15m`, `1h` or `today`.
    pub length: String,
    pub issued: String,
    /// When it ends (RFC 3339), where the record tells: `session` grants end with the
    /// client's session, `today` grants at the device's midnight.
    pub expires: Option<String>,
    pub active: bool,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Identity {
    pub user: String,
    pub devices: Vec<String>,
    pub clients: Vec<String>,
    pub tools: Vec<ToolUse>,
    pub grants: Vec<GrantHeld>,
}

/// `approved for 1h, grant g-abc` in a decision's reason (records without the grant columns).
fn grant_of(reason: &str) -> Option<(String, String)> {
    let rest = &reason[reason.find("approved for ")? + "approved for ".len()..];
    let (length, rest) = rest.split_once(", grant ")?;
    let id: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    (!id.is_empty()).then(|| (length.to_string(), id))
}

fn ends(issued: &str, length: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(issued, &time::format_description::well_known::Rfc3339).ok()?;
    let end = match length {
        "15m" => t + time::Duration::minutes(15),
        "1h" => t + time::Duration::hours(1),
        "today" => t.replace_time(time::Time::MIDNIGHT) + time::Duration::days(1),
        _ => return None,
    };
    end.format(&time::format_description::well_known::Rfc3339).ok()
}

pub async fn entitlements(db: &Db, now: &str) -> Result<Vec<Identity>, DbError> {
    /// user, server, tool, calls, allowed, last used.
    type UseRow = (String, Option<String>, Option<String>, i64, i64, String);
    let uses: Vec<UseRow> = sqlx::query_as(
        "SELECT user_name, server, tool, COUNT(*), SUM(CASE WHEN decision = 'allow' OR approval = 'approved' THEN 1 ELSE 0 END), MAX(time) \
         FROM records WHERE kind = 'call' AND (method = 'tools/call' OR method IS NULL) GROUP BY user_name, server, tool ORDER BY user_name, server, tool",
    )
    .fetch_all(&db.pool)
    .await?;
    type ApprovalRow = (String, Option<String>, Option<String>, String, i64);
    let approvals: Vec<ApprovalRow> = sqlx::query_as(
        "SELECT user_name, server, tool, approver, COUNT(*) FROM records \
         WHERE kind = 'call' AND approval = 'approved' AND approver IS NOT NULL \
         GROUP BY user_name, server, tool, approver",
    )
    .fetch_all(&db.pool)
    .await?;
    let seen: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT DISTINCT user_name, device_id, client FROM records ORDER BY user_name")
            .fetch_all(&db.pool)
            .await?;
    type GrantRow = (String, Option<String>, Option<String>, String, Option<String>, Option<String>, Option<String>);
    let grants: Vec<GrantRow> = sqlx::query_as(
        "SELECT user_name, server, tool, time, grant_id, grant_length, \
         CASE WHEN grant_columns = 0 THEN reason END FROM records \
         WHERE kind = 'call' AND (method = 'tools/call' OR method IS NULL) \
         AND (grant_length IS NOT NULL OR (grant_columns = 0 AND reason LIKE '%, grant %')) ORDER BY time",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut out: BTreeMap<String, Identity> = BTreeMap::new();
    let entry = |out: &mut BTreeMap<String, Identity>, user: &str| {
        out.entry(user.to_string()).or_insert_with(|| Identity {
            user: user.to_string(),
            devices: Vec::new(),
            clients: Vec::new(),
            tools: Vec::new(),
            grants: Vec::new(),
        });
    };
    for (user, device, client) in seen {
        entry(&mut out, &user);
        if let Some(i) = out.get_mut(&user) {
            if !i.devices.contains(&device) {
                i.devices.push(device);
            }
            if let Some(c) = client.filter(|c| !i.clients.contains(c)) {
                i.clients.push(c);
            }
        }
    }
    for (user, server, tool, calls, allowed, last_used) in uses {
        entry(&mut out, &user);
        if let Some(i) = out.get_mut(&user) {
            i.tools.push(ToolUse {
                server: server.unwrap_or_default(),
                tool: tool.unwrap_or_default(),
                calls,
                allowed,
                refused: calls - allowed,
                last_used,
                approved_by: BTreeMap::new(),
            });
        }
    }
    for (user, server, tool, approver, count) in approvals {
        let (server, tool) = (server.unwrap_or_default(), tool.unwrap_or_default());
        if let Some(t) =
            out.get_mut(&user).and_then(|i| i.tools.iter_mut().find(|t| t.server == server && t.tool == tool))
        {
            t.approved_by.insert(approver, count);
        }
    }
    for (user, server, tool, issued, grant_id, grant_length, legacy_reason) in grants {
        let issued_grant = match (grant_id, grant_length) {
            (Some(id), Some(length)) => Some((length, id)),
            _ => legacy_reason.as_deref().and_then(grant_of),
        };
        let Some((length, id)) = issued_grant else { continue };
        let expires = ends(&issued, &length);
        let active = expires.as_deref().is_none_or(|e| e > now);
        entry(&mut out, &user);
        if let Some(i) = out.get_mut(&user) {
            if !i.grants.iter().any(|g| g.id == id) {
                i.grants.push(GrantHeld {
                    id,
                    server: server.unwrap_or_default(),
                    tool: tool.unwrap_or_default(),
                    length,
                    issued,
                    expires,
                    active,
                });
            }
        }
    }
    Ok(out.into_values().collect())
}

/// One CSV row per identity, server and tool, with the grants that identity holds on it;
/// every cell inert in a spreadsheet ([`crate::csv_export`]).
pub fn to_csv(ids: &[Identity]) -> Result<String, csv::Error> {
    let mut w = crate::csv_export::Csv::new();
    w.row(["user", "server", "tool", "calls", "allowed", "refused", "last_used", "active_grants", "approved_by"])?;
    for i in ids {
        for t in &i.tools {
            let grants: Vec<String> = i
                .grants
                .iter()
                .filter(|g| g.active && g.server == t.server && g.tool == t.tool)
                .map(|g| format!("{} ({})", g.id, g.length))
                .collect();
            w.row([
                i.user.as_str(),
                &t.server,
                &t.tool,
                &t.calls.to_string(),
                &t.allowed.to_string(),
                &t.refused.to_string(),
                &t.last_used,
                &grants.join("; "),
                &t.approved_by.iter().map(|(who, n)| format!("{who} ({n})")).collect::<Vec<_>>().join("; "),
            ])?;
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_audit::wire::{Batch, WireRecord};

    fn record(user: &str, seq: i64, prev: &str, reason: &str, grant: Option<(&str, &str)>) -> WireRecord {
        let mut r = WireRecord {
            seq,
            id: format!("{user}-{seq}"),
            time: format!("2026-11-29T10:0{seq}:00Z"),
            kind: "call".into(),
            user: user.into(),
            device: format!("{user}-laptop"),
            client: Some("cursor".into()),
            client_name: None,
            client_version: None,
            session: Some("s-1".into()),
            server: Some("fs".into()),
            tool: Some("write_file".into()),
            method: Some("tools/call".into()),
            arguments: None,
            decision: "ask".into(),
            rule: Some("default:write".into()),
            reason: Some(reason.into()),
            approval: Some("approved".into()),
            policy_version: None,
            class: Some("write".into()),
            label: None,
            grant_id: grant.map(|g| g.0.to_string()),
            grant_length: grant.map(|g| g.1.to_string()),
            trace_id: None,
            user_verified: None,
            os_user: None,
            owner: None,
            approver: None,
            request_id: None,
            prev_hash: Some(prev.into()),
            hash: None,
        };
        r.hash = Some(r.chain_fields().hash(prev));
        r
    }

    /// Two devices through ingestion: one sends the grant columns (and a reason that
    /// quotes a grant it does not hold, as a tool's name can), one is older and sends
    /// only reasons.
    async fn grants_come_from_the_columns_and_old_reasons_only(db: &Db) {
        for device in ["new", "old"] {
            sqlx::query("INSERT INTO devices (id, name, credential_sha256, enrolled_at) VALUES ($1, $1, $1, $2)")
                .bind(device)
                .bind("2026-11-29T09:00:00Z")
                .execute(&db.pool)
                .await
                .unwrap();
        }
        let issued = record(
            "ana",
            1,
            countersign_audit::chain::GENESIS,
            "a write (approved for 1h, grant g-new)",
            Some(("g-new", "1h")),
        );
        let quoted =
            record("ana", 2, issued.hash.as_deref().unwrap(), "`x (approved for today, grant g-forged)` asks", None);
        let batch = Batch { records: vec![issued, quoted], outcomes: vec![], grant_columns: true };
        assert!(matches!(
            crate::ingest::ingest(db, None, "new", &batch).await.unwrap(),
            crate::ingest::Ingested::Stored { .. }
        ));
        let old = record("bob", 1, countersign_audit::chain::GENESIS, "a write (approved for 15m, grant g-old)", None);
        let batch = Batch { records: vec![old], outcomes: vec![], grant_columns: false };
        assert!(matches!(
            crate::ingest::ingest(db, None, "old", &batch).await.unwrap(),
            crate::ingest::Ingested::Stored { .. }
        ));
        let (alerts,): (i64,) = sqlx::query_as("SELECT count(*) FROM alerts").fetch_one(&db.pool).await.unwrap();
        assert_eq!(alerts, 0, "the hashes hold");

        let ids = entitlements(db, "2026-11-29T10:30:00Z").await.unwrap();
        let held: Vec<(&str, &str, &str, Option<&str>, bool)> = ids
            .iter()
            .flat_map(|i| {
                i.grants
                    .iter()
                    .map(|g| (i.user.as_str(), g.id.as_str(), g.length.as_str(), g.expires.as_deref(), g.active))
            })
            .collect();
        assert_eq!(
            held,
            [
                ("ana", "g-new", "1h", Some("2026-11-29T11:01:00Z"), true),
                ("bob", "g-old", "15m", Some("2026-11-29T10:16:00Z"), false),
            ]
        );
    }

    #[tokio::test]
    async fn grants_come_from_the_columns_and_old_reasons_only_sqlite() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        grants_come_from_the_columns_and_old_reasons_only(&db).await;
    }

    /// The same on PostgreSQL, when `COUNTERSIGN_TEST_POSTGRES` names a role that may
    /// create databases (`scripts/postgres.sh`; CI sets it). The database is dropped after.
    #[tokio::test]
    async fn grants_come_from_the_columns_and_old_reasons_only_postgres() {
        let Some(test_db) = crate::db::fresh_postgres("entitlements").await else { return };
        let db = &test_db.db;
        grants_come_from_the_columns_and_old_reasons_only(db).await;
        test_db.drop_database().await;
    }

    #[test]
    fn grants_are_read_from_the_decision_reason() {
        assert_eq!(
            grant_of("writes ask (approved for 1h, grant g-0192ab-cd)"),
            Some(("1h".into(), "g-0192ab-cd".into()))
        );
        assert_eq!(grant_of("reads are allowed"), None);
        assert_eq!(ends("2026-11-29T10:00:00Z", "15m").as_deref(), Some("2026-11-29T10:15:00Z"));
        assert_eq!(ends("2026-11-29T10:00:00Z", "today").as_deref(), Some("2026-11-30T00:00:00Z"));
        assert_eq!(ends("2026-11-29T10:00:00Z", "session"), None);
    }

    #[test]
    fn the_csv_export_makes_hostile_names_inert() {
        let ids = vec![Identity {
            user: "@SUM(1+1)".into(),
            devices: vec![],
            clients: vec![],
            tools: vec![ToolUse {
                server: "+srv".into(),
                tool: "-rm".into(),
                calls: 1,
                allowed: 1,
                refused: 0,
                last_used: "=HYPERLINK(\"http://evil.example\")".into(),
                approved_by: BTreeMap::from([("=cmd|' /C calc'!A0".to_string(), 1)]),
            }],
            grants: vec![],
        }];
        let text = to_csv(&ids).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert_eq!(
            row,
            "'@SUM(1+1),'+srv,'-rm,1,1,0,\"'=HYPERLINK(\"\"http://evil.example\"\")\",,'=cmd|' /C calc'!A0 (1)"
        );
    }
}
