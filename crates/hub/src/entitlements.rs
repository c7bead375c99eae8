//! The entitlements view for access reviews: for every identity (the employee's user
//! name; enterprise agents appear under their own user and client token), which servers
//! and tools it used (calls allowed and refused, last use) and which grants approvals
//! left it (from the decision records: `approved for 1h, grant g-…`), with when each
//! ends. As JSON, or CSV with one row per identity, server and tool.

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

/// `approved for 1h, grant g-abc` in a decision's reason.
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
    let uses: Vec<(String, Option<String>, Option<String>, i64, i64, String)> = sqlx::query_as(
        "SELECT user_name, server, tool, COUNT(*), SUM(CASE WHEN decision = 'allow' OR approval = 'approved' THEN 1 ELSE 0 END), MAX(time) \
         FROM records WHERE kind = 'call' AND (method = 'tools/call' OR method IS NULL) GROUP BY user_name, server, tool ORDER BY user_name, server, tool",
    )
    .fetch_all(&db.pool)
    .await?;
    let seen: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT DISTINCT user_name, device_id, client FROM records ORDER BY user_name")
            .fetch_all(&db.pool)
            .await?;
    let grants: Vec<(String, Option<String>, Option<String>, String, String)> = sqlx::query_as(
        "SELECT user_name, server, tool, time, reason FROM records WHERE kind = 'call' AND (method = 'tools/call' OR method IS NULL) AND reason LIKE '%, grant %' \
         ORDER BY time",
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
            });
        }
    }
    for (user, server, tool, issued, reason) in grants {
        let Some((length, id)) = grant_of(&reason) else { continue };
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
    w.row(["user", "server", "tool", "calls", "allowed", "refused", "last_used", "active_grants"])?;
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
            ])?;
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            }],
            grants: vec![],
        }];
        let text = to_csv(&ids).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert_eq!(row, "'@SUM(1+1),'+srv,'-rm,1,1,0,\"'=HYPERLINK(\"\"http://evil.example\"\")\",");
    }
}
