//! Routed approvals over the device's link to the hub, for both ends: the asking device
//! raises a request, waits for its answer (long polls) or withdraws it; an approver's
//! device keeps a long poll open for what waits for its person ([`run_waiting`]) and
//! sends answers bound to each request's nonce and arguments hash.
//!
//! It never decides or answers anything itself, never holds a request's nonce beyond
//! handing it to the gateway, and never sends a credential anywhere but the hub's URL.

use crate::hub_sync::{client, enrolled, refused, unreachable, HubLink, SyncError};
use countersign_local::home::Home;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The hub's answer to a raised request, and its later state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestState {
    pub id: String,
    /// pending, approved, denied, withdrawn, expired.
    pub state: String,
    #[serde(default)]
    pub eligible: Vec<String>,
    pub deadline_ms: u64,
    pub answered_by: Option<String>,
    /// The hub's minisign signature over the answer
    /// (`countersign_audit::checkpoint::approval_statement`), when the hub has a key.
    #[serde(default)]
    pub signature: Option<String>,
}

/// A request waiting for this device's person, as the hub hands it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingRequest {
    pub id: String,
    pub requester: String,
    pub device_name: String,
    pub client: String,
    pub server: String,
    pub tool: String,
    pub class: String,
    pub arguments: serde_json::Value,
    pub args_hash: String,
    pub rule: Option<String>,
    pub reason: String,
    pub approver: String,
    pub self_approval: bool,
    pub deadline_ms: u64,
    pub nonce: String,
}

/// Sends what `build` makes of the hub's URL with this device's credential; anything
/// but a success (and `also_ok`) is the hub's refusal.
async fn send(
    home: &Home,
    also_ok: Option<reqwest::StatusCode>,
    build: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, SyncError> {
    let (link, credential) = enrolled(home).await?;
    let resp = build(&client()?, &link.url)
        .bearer_auth(credential.expose())
        .send()
        .await
        .map_err(|e| unreachable(&link.url, e))?;
    if resp.status().is_success() || Some(resp.status()) == also_ok {
        return Ok(resp);
    }
    Err(refused(&link.url, resp).await)
}

async fn state_of(resp: reqwest::Response) -> Result<RequestState, SyncError> {
    let url = resp.url().origin().ascii_serialization();
    resp.json().await.map_err(|e| unreachable(&url, e))
}

/// Raises a request (`body` as `POST /v1/approvals` takes it).
pub async fn raise(home: &Home, body: &serde_json::Value) -> Result<RequestState, SyncError> {
    state_of(send(home, None, |c, url| c.post(format!("{url}/v1/approvals")).json(body)).await?).await
}

/// Request `id`'s state, waiting up to `wait_secs` for an answer.
pub async fn outcome(home: &Home, id: &str, wait_secs: u64) -> Result<RequestState, SyncError> {
    let resp =
        send(home, None, |c, url| c.get(format!("{url}/v1/approvals/{id}")).query(&[("wait", wait_secs)])).await?;
    state_of(resp).await
}

/// Withdraws request `id` (its call is gone, or the asker denied it here); one no longer
/// pending is fine.
pub async fn withdraw(home: &Home, id: &str) -> Result<(), SyncError> {
    let gone = Some(reqwest::StatusCode::GONE);
    send(home, gone, |c, url| c.post(format!("{url}/v1/approvals/{id}/withdraw"))).await.map(drop)
}

/// Answers request `id` as this device's person: `allow` or `deny`, with the nonce and
/// arguments hash it was shown.
pub async fn answer(home: &Home, id: &str, verdict: &str, nonce: &str, args_hash: &str) -> Result<(), SyncError> {
    let body = serde_json::json!({"verdict": verdict, "nonce": nonce, "args_hash": args_hash});
    send(home, None, |c, url| c.post(format!("{url}/v1/approvals/{id}/answer")).json(&body)).await.map(drop)
}

/// What waits for this device's person: `None` when it is what `tag` names already (after
/// up to `wait_secs`), else the list and its new tag.
pub async fn waiting(
    home: &Home,
    tag: Option<&str>,
    wait_secs: u64,
) -> Result<Option<(String, Vec<WaitingRequest>)>, SyncError> {
    let resp = send(home, Some(reqwest::StatusCode::NOT_MODIFIED), |c, url| {
        let req = c.get(format!("{url}/v1/approvals/waiting")).query(&[("wait", wait_secs)]);
        match tag {
            Some(t) => req.header(reqwest::header::IF_NONE_MATCH, t),
            None => req,
        }
    })
    .await?;
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    let new_tag = resp.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    #[derive(Deserialize)]
    struct List {
        waiting: Vec<WaitingRequest>,
    }
    let url = resp.url().origin().ascii_serialization();
    let list: List = resp.json().await.map_err(|e| unreachable(&url, e))?;
    Ok(Some((new_tag, list.waiting)))
}

/// Keeps a long poll open for requests waiting for this device's person while the
/// gateway runs (a device bound to a verified person, not an agent's host), handing each
/// new list to the gateway; backs off while the hub cannot be reached.
pub async fn run_waiting<H: crate::Host>(gateway: std::sync::Weak<H>, home: Home) {
    let mut tag: Option<String> = None;
    let mut backoff = Duration::from_secs(2);
    loop {
        if gateway.upgrade().is_none() {
            return;
        }
        let answers = HubLink::load(&home).is_some_and(|l| l.user.is_some() && l.agent.is_none());
        if !answers {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        match waiting(&home, tag.as_deref(), 25).await {
            Ok(Some((new_tag, list))) => {
                backoff = Duration::from_secs(2);
                tag = Some(new_tag);
                let Some(host) = gateway.upgrade() else { return };
                host.routed_requests(list);
            }
            Ok(None) => backoff = Duration::from_secs(2),
            Err(e) => {
                tracing::debug!("approval requests: {e}; next try in {} s", backoff.as_secs());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
