//! Routed approvals, the asking end: the approver every prompt goes through. A prompt
//! policy routes to the person at this computer goes to the local approver (the app's
//! notification, or `countersign approve`); one routed elsewhere (an agent's owner, a
//! person, a group) becomes a request at the hub, and its answer comes back from there.
//! While it waits, `countersign status` and the app show it as waiting for its approver,
//! and the asker can withdraw it (a denial here); it cannot approve it.
//!
//! Fails closed: a request the hub cannot take (unreachable, nobody may answer, this
//! device not verified) is refused at once, saying so, unless the route's fallback is
//! `self` and there is a person here to ask. Must never: approve anything itself, or
//! take an answer from anywhere but the hub's record of the request.

use crate::approver::{Answer, AnswerError, Approver, Binding, Prompt, RoutedTo};
use countersign_local::home::Home;
use countersign_policy::Fallback;
use countersign_sync::approvals_link;
use countersign_sync::hub_sync::SyncError;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// A prompt waiting at the hub.
struct Remote {
    prompt: Prompt,
    /// Resolving it (a denial here) withdraws the request.
    cancel: Option<oneshot::Sender<()>>,
}

/// The approver the gateway's waiting room talks to.
pub struct RoutingApprover {
    local: Arc<dyn Approver>,
    home: Home,
    /// Whether a person sits at this computer (not an agent's host): a route's `self`
    /// fallback needs one.
    person_here: Arc<dyn Fn() -> bool + Send + Sync>,
    remote: Arc<Mutex<HashMap<String, Remote>>>,
}

impl RoutingApprover {
    pub fn new(local: Arc<dyn Approver>, home: Home, person_here: Arc<dyn Fn() -> bool + Send + Sync>) -> Self {
        RoutingApprover { local, home, person_here, remote: Arc::default() }
    }

    fn remote(&self) -> std::sync::MutexGuard<'_, HashMap<String, Remote>> {
        self.remote.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The request the hub takes for `prompt` (its arguments as records keep them).
    fn request_body(prompt: &Prompt, to: &RoutedTo, wait_secs: u64) -> serde_json::Value {
        let route = &to.route;
        serde_json::json!({
            "id": prompt.id,
            "client": prompt.client,
            "server": prompt.server,
            "tool": prompt.tool,
            "class": to.class,
            "arguments": to.arguments,
            "args_hash": prompt.args_hash,
            "rule": route.rule,
            "reason": prompt.reason,
            "policy_version": to.policy_version,
            "approver": route.approver.text(),
            "self_approval": route.self_approval,
            "wait_secs": wait_secs,
        })
    }
}

fn now_ms() -> u64 {
    crate::clock::now_ms()
}

/// Why an approval cannot be trusted to have come from the hub the company runs: where
/// managed policy names the hub's public key (`bundle_public_key`), an approval runs
/// only with the hub's signature over this request, these arguments and this approver.
/// (A denial needs none: it runs nothing.)
fn unsigned(s: &approvals_link::RequestState, args_hash: &str, by: &str) -> Option<String> {
    if s.state != "approved" {
        return None;
    }
    let key = countersign_local::managed_files::hub_public_key()?;
    let text = countersign_audit::checkpoint::approval_statement(&s.id, args_hash, &s.state, by);
    let signed = s.signature.as_deref().is_some_and(|sig| countersign_audit::checkpoint::signed_by(&key, &text, sig));
    (!signed).then(|| {
        format!(
            "the approval of request `{}` is not signed by the hub's key (managed policy's bundle_public_key): \
             not trusted, not run",
            s.id
        )
    })
}

impl Approver for RoutingApprover {
    fn ask(&self, prompt: Prompt) -> BoxFuture<'static, Answer> {
        let Some(to) = prompt.route.clone().filter(|r| !r.route.is_local()) else {
            return self.local.ask(prompt);
        };
        let route = to.route.clone();
        // The approver sees the arguments as records keep them: if redaction hid any of
        // them, they could not see what would run. Fail closed.
        if to.arguments != prompt.arguments {
            let who = route.who();
            return Box::pin(async move {
                Answer::Refused(format!(
                    "it needs approval from {who}, and its arguments hold values Countersign keeps out of records \
                     (credentials), which they could not see"
                ))
            });
        }
        let (tx, mut cancelled) = oneshot::channel();
        self.remote().insert(prompt.id.clone(), Remote { prompt: prompt.clone(), cancel: Some(tx) });
        let (home, local, remote, person_here) =
            (self.home.clone(), self.local.clone(), self.remote.clone(), self.person_here.clone());
        let id = prompt.id.clone();
        let wait_secs = prompt.deadline_ms.saturating_sub(now_ms()).div_ceil(1000).max(1);
        Box::pin(async move {
            let who = route.who();
            let forget = || {
                remote.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            };
            let raised = approvals_link::raise(&home, &Self::request_body(&prompt, &to, wait_secs)).await;
            let eligible = match &raised {
                Ok(state) if state.id == id => state.eligible.clone(),
                _ => Vec::new(),
            };
            let raised = raised.and_then(|s| match s.id == id {
                true => Ok(s),
                false => Err(SyncError::Local(format!("the hub answered for request `{}`, not `{id}`", s.id))),
            });
            if let Err(e) = raised {
                forget();
                tracing::warn!(prompt = %id, "routed approval not raised: {e}");
                // The fallback is for a hub out of reach, never for one that refused: a
                // refusal (nobody may answer, separation of duties) stands.
                let away = matches!(e, SyncError::Unreachable { .. } | SyncError::NotEnrolled);
                if away && route.fallback == Fallback::Myself && person_here() {
                    let mut here = prompt;
                    here.route = None;
                    here.reason = format!("{} (asked here: the hub could not take it for {who}: {e})", here.reason);
                    return local.ask(here).await;
                }
                return Answer::Refused(format!("it needs approval from {who}, and the hub could not ask them: {e}"));
            }
            tracing::info!(prompt = %id, "approval routed through the hub to {who}");
            let mut backoff = Duration::from_millis(500);
            loop {
                tokio::select! {
                    _ = &mut cancelled => {
                        forget();
                        let _ = approvals_link::withdraw(&home, &id).await;
                        return Answer::Denied;
                    }
                    state = approvals_link::outcome(&home, &id, 25) => match state {
                        Ok(s) if s.state == "pending" => backoff = Duration::from_millis(500),
                        Ok(s) => {
                            forget();
                            let by = s.answered_by.clone().unwrap_or_default();
                            // Only an answer about this request, by someone the hub named
                            // eligible when it took it, counts as an approval.
                            if let Some(why) = unsigned(&s, &prompt.args_hash, &by) {
                                let _ = approvals_link::withdraw(&home, &id).await;
                                return Answer::Refused(why);
                            }
                            if s.state == "approved" && (s.id != id || !eligible.contains(&by)) {
                                let _ = approvals_link::withdraw(&home, &id).await;
                                return Answer::Refused(format!(
                                    "the hub's answer does not hold (request `{}`, answered by `{by}`, eligible: {})",
                                    s.id,
                                    eligible.join(", ")
                                ));
                            }
                            return match s.state.as_str() {
                                "approved" => Answer::Routed { approved: true, by, request: id },
                                "denied" => Answer::Routed { approved: false, by, request: id },
                                other => Answer::Refused(format!("its request to {who} was {other} unanswered")),
                            };
                        }
                        Err(e) => {
                            // The hub went away while the request waits: look again (the
                            // waiting room's deadline ends it if it never comes back).
                            tracing::debug!(prompt = %id, "routed approval: {e}");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(10));
                        }
                    },
                }
            }
        })
    }

    fn withdraw(&self, id: &str) {
        let gone = self.remote().remove(id);
        match gone {
            Some(_) => {
                let (home, id) = (self.home.clone(), id.to_string());
                tokio::spawn(async move {
                    if let Err(e) = approvals_link::withdraw(&home, &id).await {
                        tracing::debug!(prompt = %id, "withdrawing a routed request: {e}");
                    }
                });
            }
            None => self.local.withdraw(id),
        }
    }

    fn update(&self, prompt: &Prompt) {
        match self.remote().get_mut(&prompt.id) {
            Some(r) => r.prompt.waiting = prompt.waiting,
            None => self.local.update(prompt),
        }
    }

    fn pending(&self) -> Vec<Prompt> {
        let mut all = self.local.pending();
        all.extend(self.remote().values().map(|r| r.prompt.clone()));
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    fn answer(&self, id: &str, binding: Option<&Binding>, answer: Answer) -> Result<(), AnswerError> {
        let mut remote = self.remote();
        let Some(r) = remote.get_mut(id) else {
            drop(remote);
            return self.local.answer(id, binding, answer);
        };
        match answer {
            Answer::Denied => {
                if let Some(cancel) = r.cancel.take() {
                    let _ = cancel.send(());
                }
                Ok(())
            }
            _ => Err(AnswerError::Routed {
                id: id.to_string(),
                who: r.prompt.route.as_ref().map(|r| r.route.who()).unwrap_or_default(),
            }),
        }
    }

    fn who_answers(&self) -> String {
        self.local.who_answers()
    }
}
