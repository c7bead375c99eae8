//! Reading the audit trail back: records filtered by user, device, client, server, tool,
//! decision, W3C trace id, whether the user was verified, an agent's owner and time range,
//! newest last, as JSON objects with the same field names as `countersign audit export`
//! (plus `device_id` and `seq`; `user_verified` a JSON boolean), or as CSV.

use crate::db::{Db, DbError};
use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::Row;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub device: Option<String>,
    pub client: Option<String>,
    pub server: Option<String>,
    pub tool: Option<String>,
    pub decision: Option<String>,
    /// The W3C trace id of the request behind the record (32 lower-case hex digits).
    pub trace_id: Option<String>,
    /// `true`: only records whose user is a verified identity; `false`: only records whose
    /// device said it is not (records without the column match neither).
    pub user_verified: Option<bool>,
    /// An agent's accountable owner (an email).
    pub owner: Option<String>,
    /// Who answered: `self`, or the verified identity who answered a routed approval.
    pub approver: Option<String>,
    /// RFC 3339; records at or after.
    pub from: Option<String>,
    /// RFC 3339; records before.
    pub to: Option<String>,
    pub limit: Option<i64>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// `newest`: newest first, a page at a time (the console); default oldest first.
    pub order: Option<String>,
    /// With `order=newest`: only records older than this cursor (the `X-Next-Cursor` of
    /// the page before), so a page costs the same however deep it is.
    pub before: Option<String>,
}

/// A record's place in the newest-first order, as an opaque cursor: base64url of the JSON
/// `[time, device_id, seq]` (whatever a device put in its time, the cursor stays one
/// header-safe token).
pub fn cursor(record: &Map<String, Value>) -> Option<String> {
    use base64::Engine;
    let time = record.get("time")?.as_str()?;
    let device = record.get("device_id")?.as_str()?;
    let seq = record.get("seq")?.as_i64()?;
    let text = serde_json::to_string(&serde_json::json!([time, device, seq])).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text))
}

pub fn parse_cursor(text: &str) -> Option<(String, String, i64)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
    let (time, device, seq): (String, String, i64) = serde_json::from_slice(&bytes).ok()?;
    Some((time, device, seq))
}

/// Whether `q` pages newest first.
pub fn newest_first(q: &AuditQuery) -> bool {
    q.order.as_deref() == Some("newest")
}

/// The export's fields (`countersign audit export`), then where the record came from.
pub fn fields() -> impl Iterator<Item = &'static str> {
    countersign_audit::EXPORT_FIELDS.into_iter().chain(["device_id", "seq"])
}

pub async fn records(db: &Db, q: &AuditQuery) -> Result<Vec<Map<String, Value>>, DbError> {
    let mut sql = String::from("SELECT * FROM records WHERE 1=1");
    let mut binds: Vec<String> = Vec::new();
    for (column, value) in [
        ("user_name", &q.user),
        ("device_id", &q.device),
        ("client", &q.client),
        ("server", &q.server),
        ("tool", &q.tool),
        ("decision", &q.decision),
        ("trace_id", &q.trace_id),
        ("user_verified", &countersign_audit::chain::verified_text(q.user_verified).map(str::to_string)),
        ("owner", &q.owner),
        ("approver", &q.approver),
    ] {
        if let Some(v) = value {
            binds.push(v.clone());
            sql.push_str(&format!(" AND {column} = ${}", binds.len()));
        }
    }
    if let Some(from) = &q.from {
        binds.push(from.clone());
        sql.push_str(&format!(" AND time >= ${}", binds.len()));
    }
    if let Some(to) = &q.to {
        binds.push(to.clone());
        sql.push_str(&format!(" AND time < ${}", binds.len()));
    }
    let limit = q.limit.unwrap_or(1000).clamp(1, 100_000);
    let mut seq_bind = None;
    if newest_first(q) {
        if let Some(before) = &q.before {
            let (time, device, seq) = parse_cursor(before)
                .ok_or_else(|| DbError::Query(sqlx::Error::Protocol("`before` is not a cursor".into())))?;
            binds.push(time);
            binds.push(device);
            let n = binds.len();
            sql.push_str(&format!(" AND (time, device_id, seq) < (${}, ${n}, ${})", n - 1, n + 1));
            seq_bind = Some(seq);
        }
        sql.push_str(&format!(" ORDER BY time DESC, device_id DESC, seq DESC LIMIT {limit}"));
    } else {
        sql.push_str(&format!(" ORDER BY time, device_id, seq LIMIT {limit}"));
    }
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b);
    }
    if let Some(seq) = seq_bind {
        query = query.bind(seq);
    }
    let rows = query.fetch_all(&db.pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut map = Map::new();
        for field in fields() {
            let value = match field {
                "user" => text(&row, "user_name"),
                "arguments" => row
                    .try_get::<Option<String>, _>("arguments")
                    .ok()
                    .flatten()
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or(Value::Null),
                "duration_ms" => {
                    row.try_get::<Option<f64>, _>("duration_ms").ok().flatten().map_or(Value::Null, Value::from)
                }
                "seq" => row.try_get::<i64, _>("seq").map_or(Value::Null, Value::from),
                // Stored as the device sent it, `true` or `false`; a JSON boolean here.
                "user_verified" => {
                    let stored = row.try_get::<Option<String>, _>("user_verified").ok().flatten();
                    countersign_audit::chain::verified_value(stored.as_deref()).map_or(Value::Null, Value::Bool)
                }
                other => text(&row, other),
            };
            map.insert(field.to_string(), value);
        }
        out.push(map);
    }
    Ok(out)
}

fn text(row: &sqlx::any::AnyRow, column: &str) -> Value {
    row.try_get::<Option<String>, _>(column).ok().flatten().map_or(Value::Null, Value::String)
}

/// The records as CSV with a header row (arguments as JSON text); every cell inert in a
/// spreadsheet ([`crate::csv_export`]).
pub fn to_csv(records: &[Map<String, Value>]) -> Result<String, csv::Error> {
    let mut w = crate::csv_export::Csv::new();
    w.row(fields())?;
    for r in records {
        w.row(fields().map(|f| match r.get(f) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }))?;
    }
    w.finish()
}

#[cfg(test)]
mod cursor_tests {
    use super::*;

    #[test]
    fn a_cursor_survives_any_time_a_device_sends() {
        for time in ["2026-12-02T10:00:00Z", "9999~x\n~1", "\u{202e}\r\n"] {
            let record: Map<String, Value> =
                serde_json::from_value(serde_json::json!({"time": time, "device_id": "d~1", "seq": 7})).unwrap();
            let c = cursor(&record).unwrap();
            assert!(c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'), "{c}");
            assert_eq!(parse_cursor(&c), Some((time.to_string(), "d~1".to_string(), 7)));
        }
        assert_eq!(parse_cursor("not a cursor"), None);
    }
}
