//! The managed policy as the IT console edits it: the published text and its history
//! (`GET /v1/policy`, `GET /v1/policy/history`, `GET /v1/policy/versions/{v}`), a draft
//! checked as publishing checks it (`POST /v1/policy/check`), and the impact preview
//! (`POST /v1/policy/preview?days=N`: the recorded calls of the last N days decided
//! again under the draft, [`crate::impact`]). Publishing stays `PUT /v1/policy`; rolling
//! back is publishing an earlier version's text again (a new, signed version).
//!
//! Must never: publish or sign anything here, answer a role the route does not allow,
//! or name people or records in a preview for a caller who may not read the audit trail.

use crate::callers::{log_action, staff_action, Staff};
use crate::impact::{self, Recorded};
use crate::publish::{self, PublishError};
use crate::reply::{error, internal};
use crate::roles::Permission;
use crate::state::Hub;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use countersign_policy::{Layers, Policy};
use serde::Deserialize;
use serde_json::json;
use sqlx::Row;
use std::sync::Arc;

type Shared = State<Arc<Hub>>;

/// The most recorded calls one preview decides again.
pub const PREVIEW_MAX_CALLS: i64 = 2_000_000;

/// The `[policy]` part of a published document: what was uploaded, as an editor shows it.
fn policy_text(document: &str) -> String {
    match document.find("\n[policy") {
        Some(at) => document[at + 1..].to_string(),
        None => document.to_string(),
    }
}

fn invalid(e: PublishError) -> Response {
    match e {
        PublishError::Invalid(_) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        other => internal(other),
    }
}

/// `GET /v1/policy`: the published policy's text (404 before the first publication).
pub(crate) async fn current(State(hub): Shared, headers: HeaderMap) -> Response {
    if let Err(r) =
        staff_action(&hub, &headers, Permission::ReadFleet, "GET /v1/policy", "policy-read", String::new()).await
    {
        return r;
    }
    match publish::latest(&hub.db).await {
        Ok(Some(p)) => {
            Json(json!({"version": p.version, "published_at": p.published_at, "policy": policy_text(&p.document)}))
                .into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no policy has been published yet"),
        Err(e) => internal(e),
    }
}

/// `GET /v1/policy/history`: every version, newest first.
pub(crate) async fn history(State(hub): Shared, headers: HeaderMap) -> Response {
    let what = "GET /v1/policy/history";
    if let Err(r) = staff_action(&hub, &headers, Permission::ReadFleet, what, "policy-read", String::new()).await {
        return r;
    }
    match publish::history(&hub.db).await {
        Ok(list) => Json(
            list.into_iter().map(|(version, at)| json!({"version": version, "published_at": at})).collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => internal(e),
    }
}

/// `GET /v1/policy/versions/{v}`: an earlier version's text (to compare, or to publish again).
pub(crate) async fn version(State(hub): Shared, headers: HeaderMap, Path(v): Path<String>) -> Response {
    let what = "GET /v1/policy/versions/{v}";
    let detail = format!("version {}", v.chars().take(20).collect::<String>());
    if let Err(r) = staff_action(&hub, &headers, Permission::ReadFleet, what, "policy-read", detail).await {
        return r;
    }
    let Ok(v) = v.parse::<i64>() else { return error(StatusCode::NOT_FOUND, "no such policy version") };
    match publish::version(&hub.db, v).await {
        Ok(Some(p)) => {
            Json(json!({"version": p.version, "published_at": p.published_at, "policy": policy_text(&p.document)}))
                .into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no policy version {v}")),
        Err(e) => internal(e),
    }
}

/// A draft as the admin log names it: its size and digest, never its text.
fn draft_digest(body: &str) -> String {
    use sha2::Digest;
    format!("{} bytes, sha256 {}", body.len(), hex::encode(&sha2::Sha256::digest(body.as_bytes())[..8]))
}

/// `POST /v1/policy/check`: whether a draft would publish, with the laptop's own error.
pub(crate) async fn check(State(hub): Shared, Extension(staff): Extension<Staff>, body: String) -> Response {
    if let Err(r) = log_action(&hub, &staff, "policy-check", draft_digest(&body)).await {
        return r;
    }
    match publish::check(&body) {
        Ok(_) => Json(json!({"ok": true})).into_response(),
        Err(e) => invalid(e),
    }
}

#[derive(Deserialize)]
pub(crate) struct Days {
    #[serde(default = "seven")]
    days: u32,
}

fn seven() -> u32 {
    7
}

/// One batch of the calls recorded since `from` (RFC 3339), oldest first, after `after`
/// (the last batch's last place: time, device, seq).
async fn recorded_batch(
    hub: &Hub,
    from: &str,
    after: Option<&(String, String, i64)>,
) -> Result<(Vec<Recorded>, Option<(String, String, i64)>), sqlx::Error> {
    let (t, d, s) = after.cloned().unwrap_or_else(|| (from.to_string(), String::new(), i64::MIN));
    let rows = sqlx::query(
        "SELECT id, time, device_id, seq, user_name, client, server, tool, class, arguments FROM records \
         WHERE kind = 'call' AND time >= $1 AND (time, device_id, seq) > ($2, $3, $4) \
         AND server IS NOT NULL AND tool IS NOT NULL ORDER BY time, device_id, seq LIMIT $5",
    )
    .bind(from)
    .bind(t)
    .bind(d)
    .bind(s)
    .bind(PREVIEW_BATCH)
    .fetch_all(&hub.db.pool)
    .await?;
    let text =
        |row: &sqlx::any::AnyRow, c: &str| row.try_get::<Option<String>, _>(c).ok().flatten().unwrap_or_default();
    let last =
        rows.last().map(|r| (text(r, "time"), text(r, "device_id"), r.try_get::<i64, _>("seq").unwrap_or_default()));
    let calls = rows
        .iter()
        .map(|row| Recorded {
            id: text(row, "id"),
            time: text(row, "time"),
            user: text(row, "user_name"),
            client: text(row, "client"),
            server: text(row, "server"),
            tool: text(row, "tool"),
            class: serde_json::from_value(serde_json::Value::String(text(row, "class"))).ok(),
            arguments: serde_json::from_str(&text(row, "arguments")).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok((calls, last))
}

/// How many recorded calls are read and decided at a time.
const PREVIEW_BATCH: i64 = 20_000;

/// Previews running at once, hub-wide.
static PREVIEWS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// `POST /v1/policy/preview?days=N` (1 to 90, default 7): what the draft would have
/// changed over the last N days, against the published policy.
pub(crate) async fn preview(
    State(hub): Shared,
    Extension(staff): Extension<Staff>,
    Query(q): Query<Days>,
    body: String,
) -> Response {
    let days = q.days.clamp(1, 90);
    // Every preview is in the admin log: a draft is also a question about the records.
    if let Err(r) = log_action(&hub, &staff, "policy-preview", format!("{days} days, {}", draft_digest(&body))).await {
        return r;
    }
    // Deciding a week of a fleet twice takes seconds of a core: a few at a time.
    let Ok(_running) = PREVIEWS.try_acquire() else {
        return error(StatusCode::TOO_MANY_REQUESTS, "previews are running already; try again when they end");
    };
    let draft = match publish::check(&body) {
        Ok(p) => p,
        Err(e) => return invalid(e),
    };
    let compile = |settings| Policy::from_layers(Layers { bundle: Some((settings, 0)), ..Default::default() });
    let after = match compile(draft) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    let published = match publish::latest(&hub.db).await {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let before = match published.as_ref().map(|p| publish::check(&policy_text(&p.document))).transpose() {
        Ok(settings) => compile(settings.unwrap_or_default()),
        Err(e) => return internal(e),
    };
    let Ok(before) = before else { return internal("the published policy no longer compiles") };
    // Policies are compiled once and shared by the batches.
    let from = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days));
    let from = from.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let started = std::time::Instant::now();
    let policies = std::sync::Arc::new((before, after));
    let mut tally = impact::Tally::default();
    let mut place = None;
    let mut read: i64 = 0;
    while read < PREVIEW_MAX_CALLS {
        let (calls, last) = match recorded_batch(&hub, &from, place.as_ref()).await {
            Ok(b) => b,
            Err(e) => return internal(e),
        };
        if calls.is_empty() {
            break;
        }
        read += calls.len() as i64;
        place = last;
        let shared = policies.clone();
        let decided = tokio::task::spawn_blocking(move || {
            tally.add(&shared.0, &shared.1, &calls);
            tally
        })
        .await;
        let Ok(t) = decided else { return internal("the preview did not finish") };
        tally = t;
    }
    let mut report = tally.report();
    // Who was affected, and which records, is the audit trail's: for those who may read it.
    let reads_audit = staff.permits(Permission::ReadAudit);
    if !reads_audit {
        report.by_person.clear();
        report.examples.clear();
    }
    Json(json!({
        "days": days,
        "against_version": published.map(|p| p.version),
        "took_ms": started.elapsed().as_millis() as u64,
        // The cap was reached: later calls in the window were not decided.
        "truncated": read >= PREVIEW_MAX_CALLS,
        "people_shown": reads_audit,
        "impact": report,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_editor_sees_the_uploaded_policy_not_the_bundle_header() {
        let doc = "# Published by the Countersign hub\n[bundle]\nversion = 3\n\n[policy]\ndeny = [\"x\"]\n";
        assert_eq!(policy_text(doc), "[policy]\ndeny = [\"x\"]\n");
    }
}
