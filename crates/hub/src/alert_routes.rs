//! `/v1/alerts`: what the hub flagged (chain gaps, broken hashes, refused sign-ins,
//! break-glass use), for the fleet's viewers, and its acknowledgement with a note by an
//! auditor or admin, in the admin log. An acknowledged alert stays; it is no longer open.
//!
//! Must never: delete an alert, take a second acknowledgement, or let the break-glass
//! token close the alerts its own uses raise.

use crate::callers::{log_action, staff_action, Staff};
use crate::reply::{error, internal};
use crate::roles::Permission;
use crate::state::Hub;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

type Shared = State<Arc<Hub>>;

pub(crate) async fn alerts(State(hub): Shared, headers: HeaderMap) -> Response {
    if let Err(r) =
        staff_action(&hub, &headers, Permission::ReadFleet, "GET /v1/alerts", "alerts-query", String::new()).await
    {
        return r;
    }
    type AlertRow = (String, String, Option<String>, String, String, Option<String>, Option<String>, Option<String>);
    let rows: Result<Vec<AlertRow>, _> = sqlx::query_as(
        "SELECT id, time, device_id, kind, detail, acknowledged_at, acknowledged_by, note FROM alerts ORDER BY time",
    )
    .fetch_all(&hub.db.pool)
    .await;
    match rows {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|(id, time, device_id, kind, detail, at, by, note)| {
                    json!({"id": id, "time": time, "device_id": device_id, "kind": kind, "detail": detail,
                           "acknowledged_at": at, "acknowledged_by": by, "note": note})
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Acknowledge {
    note: String,
}

/// `POST /v1/alerts/{id}/acknowledge`: `{note}`; once, by an auditor or admin, in the
/// admin log with the note.
pub(crate) async fn acknowledge(
    State(hub): Shared,
    Extension(staff): Extension<Staff>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let ack: Acknowledge = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("expected {{\"note\": \"…\"}}: {e}")),
    };
    // The break-glass token raises an alert at every use: it never closes one.
    if staff.actor == "break-glass" {
        return error(StatusCode::FORBIDDEN, "the break-glass token acknowledges no alert (its own uses raise them)");
    }
    let note: String = ack.note.trim().chars().filter(|c| !c.is_control()).take(1000).collect();
    if note.is_empty() {
        return error(StatusCode::BAD_REQUEST, "say what was done about it: `note` is empty");
    }
    let done = sqlx::query(
        "UPDATE alerts SET acknowledged_at = $1, acknowledged_by = $2, note = $3 WHERE id = $4 AND acknowledged_at IS NULL",
    )
    .bind(countersign_audit::now_rfc3339())
    .bind(&staff.actor)
    .bind(&note)
    .bind(&id)
    .execute(&hub.db.pool)
    .await;
    match done.map(|d| d.rows_affected()) {
        Ok(1) => {
            if let Err(r) = log_action(&hub, &staff, "alert-acknowledged", format!("alert {id}: {note}")).await {
                return r;
            }
            Json(json!({"id": id, "acknowledged_by": staff.actor, "note": note})).into_response()
        }
        Ok(_) => error(StatusCode::CONFLICT, format!("alert `{id}` does not exist or was acknowledged already")),
        Err(e) => internal(e),
    }
}
