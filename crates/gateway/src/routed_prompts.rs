//! Routed approvals, the answering end: requests the hub routes to this device's person
//! (as an agent's owner, a named approver, a group's member) are shown by this device's
//! own approver (the app's notification, `countersign approve`), like a prompt of its
//! own, naming who asks and from which device. The person's answer goes back to the
//! hub bound to the request's nonce and arguments hash; the hub decides whether it
//! counts. A request answered elsewhere, withdrawn or expired is taken down.
//!
//! Must never: run anything (the call runs on the asker's device), or answer a request
//! the person did not answer here.

use crate::approver::{Answer, Approver, AskedBy, Prompt};
use countersign_audit::Decision;
use countersign_local::home::Home;
use countersign_sync::approvals_link::{self, WaitingRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What became of an answer given here, for this device's journal.
pub struct Answered {
    pub decision: Decision,
    pub reason: String,
    pub server: String,
    pub tool: String,
}

/// Requests shown here: the hub's request id → this device's prompt id.
#[derive(Default)]
pub struct AskedHere(Mutex<HashMap<String, String>>);

impl AskedHere {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Shows what newly waits (with `approver`), takes down what no longer does; `answered`
/// records what became of each answer sent.
pub(crate) fn reconcile(
    asked_here: &Arc<AskedHere>,
    approver: &Arc<dyn Approver>,
    home: &Home,
    waiting: Vec<WaitingRequest>,
    answered: Arc<dyn Fn(Answered) + Send + Sync>,
) {
    let gone: Vec<String> = {
        let mut shown = asked_here.map();
        let ids: Vec<String> = shown.keys().filter(|id| !waiting.iter().any(|w| &w.id == *id)).cloned().collect();
        ids.iter().filter_map(|id| shown.remove(id)).collect()
    };
    for prompt in gone {
        approver.withdraw(&prompt);
    }
    for request in waiting {
        let prompt_id = uuid::Uuid::now_v7().simple().to_string();
        {
            let mut shown = asked_here.map();
            if shown.contains_key(&request.id) {
                continue;
            }
            shown.insert(request.id.clone(), prompt_id.clone());
        }
        let prompt = Prompt {
            id: prompt_id,
            session: "routed".into(),
            client: request.client.clone(),
            client_name: None,
            server: request.server.clone(),
            tool: request.tool.clone(),
            arguments: request.arguments.clone(),
            args_hash: request.args_hash.clone(),
            reason: format!(
                "{} on {} asks you{}: {}",
                request.requester,
                request.device_name,
                request.rule.as_deref().map(|r| format!(" (policy rule `{r}`)")).unwrap_or_default(),
                request.reason
            ),
            deadline_ms: request.deadline_ms,
            waiting: 1,
            similar: None,
            route: None,
            asked_by: Some(AskedBy {
                request: request.id.clone(),
                requester: request.requester.clone(),
                device: request.device_name.clone(),
            }),
            plan: None,
        };
        let (asked_here, approver, home, answered) =
            (asked_here.clone(), approver.clone(), home.clone(), answered.clone());
        tokio::spawn(async move {
            let answer = approver.ask(prompt).await;
            // Taken down because the request left the hub's list: nothing to send.
            if asked_here.map().remove(&request.id).is_none() {
                return;
            }
            let verdict = match answer {
                Answer::Approved { .. } => "allow",
                _ => "deny",
            };
            let sent = approvals_link::answer(&home, &request.id, verdict, &request.nonce, &request.args_hash).await;
            let (decision, reason) = match &sent {
                Ok(()) => (
                    if verdict == "allow" {
                        countersign_audit::Decision::Allow
                    } else {
                        countersign_audit::Decision::Deny
                    },
                    format!(
                        "answered {verdict} to request {} from {} on {}",
                        request.id, request.requester, request.device_name
                    ),
                ),
                Err(e) => (
                    Decision::Deny,
                    format!(
                        "the answer {verdict} to request {} from {} was not taken: {e}",
                        request.id, request.requester
                    ),
                ),
            };
            tracing::info!("{reason}");
            answered(Answered { decision, reason, server: request.server.clone(), tool: request.tool.clone() });
        });
    }
}
