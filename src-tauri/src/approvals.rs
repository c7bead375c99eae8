//! The desktop approver: prompts wait here until the person answers in Countersign's own
//! UI or through the notification Countersign posted. Each prompt gets a random nonce
//! that only the app's UI and its notification listener know; an answer must carry the
//! prompt's nonce and the hash of the exact arguments shown, or it is refused. The
//! gateway's control API cannot answer prompts here (a local process holding the control
//! token is not the person). It must never approve anything on its own: no answer is a
//! denial, and the deadline is the gateway's.

use countersign_gateway::approver::{Answer, AnswerError, Approver, Binding, Prompt};
use futures::future::BoxFuture;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// A prompt as the UI sees it: the full prompt plus the nonce its answer must carry.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PendingPrompt {
    #[serde(flatten)]
    pub prompt: Prompt,
    pub nonce: String,
    /// A one-line summary of the arguments for a notification.
    pub summary: String,
    /// Whether the summary had to be cut (then only the full view can approve).
    pub truncated: bool,
}

/// What the approver tells the rest of the app.
#[derive(Debug, Clone)]
pub enum ApprovalEvent {
    /// A new prompt to show (notification, tray count, window).
    Raised(Box<PendingPrompt>, Instant),
    /// A prompt was answered or withdrawn.
    Settled { id: String },
}

struct Waiting {
    pending: PendingPrompt,
    reply: oneshot::Sender<Answer>,
}

pub struct DesktopApprover {
    waiting: Mutex<HashMap<String, Waiting>>,
    events: mpsc::UnboundedSender<ApprovalEvent>,
}

fn nonce() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One line that says what the call does (`path=/home/me/a.txt, content=hello`), and
/// whether it had to be cut to fit.
pub fn summarize(arguments: &serde_json::Value, max: usize) -> (String, bool) {
    let text = match arguments.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => "no arguments".to_string(),
    };
    // Controls and invisible characters are shown as escapes, not obeyed.
    match countersign_policy::shown::visible_within(&text, max) {
        (cut, true) => (format!("{cut}… (truncated; open Countersign for the full arguments)"), true),
        (whole, false) => (whole, false),
    }
}

impl DesktopApprover {
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<ApprovalEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(DesktopApprover { waiting: Mutex::new(HashMap::new()), events: tx }), rx)
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers a prompt from the app's own UI or its verified notification listener: the
    /// answer must carry the prompt's nonce and the hash of the arguments shown.
    fn answer_bound(&self, id: &str, binding: &Binding, answer: Answer) -> Result<(), AnswerError> {
        let mut waiting = self.waiting();
        let w = waiting.get(id).ok_or_else(|| AnswerError::Unknown(id.to_string()))?;
        if w.pending.nonce != binding.nonce {
            return Err(AnswerError::BadNonce);
        }
        if w.pending.prompt.args_hash != binding.args_hash {
            return Err(AnswerError::ArgumentsChanged);
        }
        let w = waiting.remove(id).ok_or_else(|| AnswerError::Unknown(id.to_string()))?;
        drop(waiting);
        let _ = w.reply.send(answer);
        let _ = self.events.send(ApprovalEvent::Settled { id: id.to_string() });
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<PendingPrompt> {
        self.waiting().get(id).map(|w| w.pending.clone())
    }

    pub fn pending_full(&self) -> Vec<PendingPrompt> {
        let mut list: Vec<PendingPrompt> = self.waiting().values().map(|w| w.pending.clone()).collect();
        list.sort_by(|a, b| a.prompt.id.cmp(&b.prompt.id));
        list
    }
}

impl Approver for DesktopApprover {
    fn ask(&self, prompt: Prompt) -> BoxFuture<'static, Answer> {
        let raised = Instant::now();
        let (tx, rx) = oneshot::channel();
        let (summary, truncated) = summarize(&prompt.arguments, 120);
        let pending = PendingPrompt { summary, truncated, nonce: nonce(), prompt };
        self.waiting().insert(pending.prompt.id.clone(), Waiting { pending: pending.clone(), reply: tx });
        let _ = self.events.send(ApprovalEvent::Raised(Box::new(pending), raised));
        Box::pin(async move { rx.await.unwrap_or(Answer::Denied) })
    }

    fn withdraw(&self, id: &str) {
        if self.waiting().remove(id).is_some() {
            let _ = self.events.send(ApprovalEvent::Settled { id: id.to_string() });
        }
    }

    /// More or fewer identical calls wait on the prompt: the window shows the new count
    /// (the notification already posted keeps its text).
    fn update(&self, prompt: &Prompt) {
        if let Some(w) = self.waiting().get_mut(&prompt.id) {
            w.pending.prompt.waiting = prompt.waiting;
        }
    }

    fn pending(&self) -> Vec<Prompt> {
        self.pending_full().into_iter().map(|p| p.prompt).collect()
    }

    /// Only answers bound to what was shown: an answer without the prompt's nonce (the
    /// control API's, from any local process holding the control token) is refused. In the
    /// desktop app only the person answers, through the app's own window or notification.
    fn answer(&self, id: &str, binding: Option<&Binding>, answer: Answer) -> Result<(), AnswerError> {
        match binding {
            Some(binding) => self.answer_bound(id, binding, answer),
            None => {
                tracing::warn!(prompt = %id, "refused an answer without the prompt's nonce: the desktop app answers only from its own UI");
                Err(AnswerError::OnlyWhereShown(id.to_string()))
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A prompt for `fs.write_file` with these arguments, as the gateway would raise it.
    pub(crate) fn prompt_with(id: &str, arguments: serde_json::Value) -> Prompt {
        Prompt { arguments, ..prompt(id) }
    }

    fn prompt(id: &str) -> Prompt {
        Prompt {
            id: id.into(),
            session: "s".into(),
            client: "c".into(),
            client_name: None,
            server: "fs".into(),
            tool: "write_file".into(),
            arguments: json!({"path": "/tmp/a"}),
            args_hash: "h1".into(),
            reason: "r".into(),
            deadline_ms: 0,
            waiting: 1,
            similar: None,
            route: None,
            asked_by: None,
            plan: None,
        }
    }

    #[tokio::test]
    async fn sec_17_only_the_nonce_and_the_shown_arguments_answer() {
        let (a, mut events) = DesktopApprover::new();
        let fut = a.ask(prompt("p1"));
        let Some(ApprovalEvent::Raised(p, _)) = events.recv().await else { panic!("no event") };
        let bound = |nonce: &str, hash: &str| Binding { nonce: nonce.into(), args_hash: hash.into() };
        assert_eq!(
            a.answer("p1", None, Answer::once()),
            Err(AnswerError::OnlyWhereShown("p1".into())),
            "the control API cannot answer"
        );
        assert_eq!(a.answer("p1", Some(&bound("guess", "h1")), Answer::once()), Err(AnswerError::BadNonce));
        assert_eq!(a.answer("p1", Some(&bound(&p.nonce, "h2")), Answer::once()), Err(AnswerError::ArgumentsChanged));
        assert_eq!(a.answer("p1", Some(&bound(&p.nonce, "h1")), Answer::once()), Ok(()));
        assert_eq!(fut.await, Answer::once());
        assert_eq!(
            a.answer("p1", Some(&bound(&p.nonce, "h1")), Answer::once()),
            Err(AnswerError::Unknown("p1".into()))
        );
    }

    #[tokio::test]
    async fn a_withdrawn_prompt_is_denied() {
        let (a, _events) = DesktopApprover::new();
        let fut = a.ask(prompt("p2"));
        a.withdraw("p2");
        assert_eq!(fut.await, Answer::Denied);
    }

    #[test]
    fn sec_18_summaries_show_controls_and_mark_truncation() {
        let (s, cut) = summarize(&json!({"path": "/a\u{202e}txt.exe", "n": "x\ny\u{200b}"}), 200);
        assert_eq!(s, "path=/a\\u{202e}txt.exe, n=x\\ny\\u{200b}");
        assert!(!cut);
        let (long, cut) = summarize(&json!({"content": "x".repeat(500)}), 50);
        assert!(long.contains("truncated") && cut, "{long}");
    }
}
