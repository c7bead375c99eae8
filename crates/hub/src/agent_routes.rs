//! `/v1/agents`: admins register, suspend, resume and transfer enterprise agents over
//! HTTP, as `countersign-hub agent …` does on the hub's host; the fleet's viewers list
//! them. Every change is a line in the admin log; a new agent's enrollment token is in the
//! answer to its creation and nowhere else.

use crate::agents::{self, AgentError, NewAgent};
use crate::callers::{log_action, staff_action, Staff};
use crate::reply::{error, internal};
use crate::roles::Permission;
use crate::state::Hub;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

fn refused(e: AgentError) -> Response {
    match e {
        AgentError::Invalid(_) => error(StatusCode::BAD_REQUEST, e.to_string()),
        AgentError::Exists(_) => error(StatusCode::CONFLICT, e.to_string()),
        AgentError::NotFound(_) => error(StatusCode::NOT_FOUND, e.to_string()),
        AgentError::Db(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Create {
    name: String,
    owner: String,
    #[serde(default)]
    approvers: Vec<String>,
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    review_date: Option<String>,
    /// How long the enrollment token lasts (default 24).
    #[serde(default)]
    token_hours: Option<u64>,
}

/// `POST /v1/agents` → the agent and its enrollment token, once.
pub(crate) async fn create(
    State(hub): State<Arc<Hub>>,
    Extension(staff): Extension<Staff>,
    body: Result<Json<Create>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"name\", \"owner\", \"approvers\"?, \"purpose\"?, \"review_date\"?, \"token_hours\"?}}: {e}"),
            )
        }
    };
    let new = NewAgent {
        name: req.name,
        owner: req.owner,
        approvers: req.approvers,
        purpose: req.purpose,
        review_date: req.review_date,
        token_hours: req.token_hours.unwrap_or(24),
    };
    match agents::create(&hub.db, &new, &staff.actor).await {
        Ok((agent, token)) => {
            if let Err(r) = log_action(&hub, &staff, "agent-create", created(&agent)).await {
                return r;
            }
            (StatusCode::CREATED, Json(json!({"agent": agent, "enrollment_token": token}))).into_response()
        }
        Err(e) => refused(e),
    }
}

/// What the admin log says of a new agent.
pub fn created(agent: &agents::Agent) -> String {
    format!(
        "agent `{}` owned by {}, approvers {}, review {}",
        agent.name,
        agent.owner,
        agent.approvers.join(", "),
        agent.review_date.as_deref().unwrap_or("none")
    )
}

/// `GET /v1/agents`: every agent, with its owner, approvers, standing and review flag.
pub(crate) async fn list(State(hub): State<Arc<Hub>>, headers: HeaderMap) -> Response {
    let what = "GET /v1/agents";
    if let Err(r) = staff_action(&hub, &headers, Permission::ReadFleet, what, "agents-query", String::new()).await {
        return r;
    }
    match agents::list(&hub.db).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct Change {
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    why: Option<String>,
}

/// `POST /v1/agents/{name}/{suspend|resume|transfer}`.
pub(crate) async fn change(
    State(hub): State<Arc<Hub>>,
    Path((name, action)): Path<(String, String)>,
    Extension(staff): Extension<Staff>,
    body: axum::body::Bytes,
) -> Response {
    let change: Change = match body.is_empty() {
        true => Change::default(),
        false => match serde_json::from_slice(&body) {
            Ok(c) => c,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("expected {{\"owner\"?, \"why\"?}}: {e}")),
        },
    };
    let done = match action.as_str() {
        "suspend" => agents::suspend(&hub.db, &name, change.why.as_deref().unwrap_or_default())
            .await
            .map(|a| (format!("agent `{}` suspended: {}", a.name, a.suspended_why.clone().unwrap_or_default()), a)),
        "resume" => agents::resume(&hub.db, &name).await.map(|a| (format!("agent `{}` resumed", a.name), a)),
        "transfer" => match change.owner.as_deref() {
            Some(owner) => agents::transfer(&hub.db, &name, owner)
                .await
                .map(|(a, before)| (format!("agent `{}` transferred from {before} to {}", a.name, a.owner), a)),
            None => return error(StatusCode::BAD_REQUEST, "a transfer names the new `owner`"),
        },
        _ => return error(StatusCode::NOT_FOUND, "the actions are suspend, resume and transfer"),
    };
    match done {
        Ok((detail, agent)) => {
            if let Err(r) = log_action(&hub, &staff, &format!("agent-{action}"), detail).await {
                return r;
            }
            Json(agent).into_response()
        }
        Err(e) => refused(e),
    }
}
