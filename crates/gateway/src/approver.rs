//! Approvals: where an `Ask` decision waits for a person. The [`Approver`] trait is the
//! one seam; this module ships the headless approver (answered by `countersign approve` /
//! `countersign deny` through the control API). The desktop app brings its own.
//!
//! An approver never decides by itself: no answer is a denial, and the caller enforces
//! the deadline. A prompt is bound to the SHA-256 of the exact canonical arguments; the
//! call that raised it is the only one its answer releases.

use countersign_policy::GrantLength;
use futures::future::{BoxFuture, FutureExt, Shared};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::oneshot;

/// What the person is asked.
#[derive(Debug, Clone, Serialize)]
pub struct Prompt {
    pub id: String,
    pub session: String,
    pub client: String,
    pub client_name: Option<String>,
    pub server: String,
    pub tool: String,
    /// The full, unredacted arguments, for the person to read before answering.
    pub arguments: serde_json::Value,
    pub args_hash: String,
    pub reason: String,
    /// Milliseconds since the Unix epoch after which the prompt counts as denied.
    pub deadline_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Approved, for how long (once: this call only), and for which arguments when the
    /// approval leaves a grant (`path=/work/**`; none: any arguments).
    Approved {
        length: GrantLength,
        condition: Option<String>,
    },
    Denied,
}

impl Answer {
    /// Approved for this call only.
    pub fn once() -> Self {
        Answer::Approved { length: GrantLength::Once, condition: None }
    }
}

/// Identical prompts waiting at once (same client, tool and exact arguments) become one:
/// later calls wait for the answer the first one gets instead of raising another prompt.
#[derive(Default)]
pub struct Coalescer {
    waiting: Mutex<HashMap<String, Shared<BoxFuture<'static, Answer>>>>,
}

impl Coalescer {
    pub fn key(prompt: &Prompt) -> String {
        format!("{}\u{0}{}\u{0}{}\u{0}{}", prompt.client, prompt.server, prompt.tool, prompt.args_hash)
    }

    /// The answer of an identical prompt already waiting, if there is one.
    pub fn join(&self, key: &str) -> Option<Shared<BoxFuture<'static, Answer>>> {
        self.waiting.lock().ok()?.get(key).cloned()
    }

    /// Registers a prompt's answer so identical calls can wait for it.
    pub fn start(&self, key: &str, answer: BoxFuture<'static, Answer>) -> Shared<BoxFuture<'static, Answer>> {
        let shared = answer.shared();
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(key.to_string(), shared.clone());
        }
        shared
    }

    pub fn finish(&self, key: &str) {
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(key);
        }
    }
}

pub trait Approver: Send + Sync {
    /// Shows `prompt` and resolves with the answer. Dropping the future withdraws it.
    fn ask(&self, prompt: Prompt) -> BoxFuture<'static, Answer>;
    /// Withdraws a prompt (its deadline passed or its call was cancelled).
    fn withdraw(&self, id: &str);
    /// The prompts waiting for an answer.
    fn pending(&self) -> Vec<Prompt>;
    /// Answers prompt `id`; false when no such prompt waits.
    fn answer(&self, id: &str, answer: Answer) -> bool;
}

/// Prompts held in memory, answered through the control API.
#[derive(Default)]
pub struct HeadlessApprover {
    waiting: Mutex<HashMap<String, (Prompt, oneshot::Sender<Answer>)>>,
}

impl Approver for HeadlessApprover {
    fn ask(&self, prompt: Prompt) -> BoxFuture<'static, Answer> {
        let (tx, rx) = oneshot::channel();
        tracing::info!(prompt = %prompt.id, server = %prompt.server, tool = %prompt.tool, "approval needed: run `countersign approve {}`", prompt.id);
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(prompt.id.clone(), (prompt, tx));
        }
        Box::pin(async move { rx.await.unwrap_or(Answer::Denied) })
    }

    fn withdraw(&self, id: &str) {
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(id);
        }
    }

    fn pending(&self) -> Vec<Prompt> {
        let mut list: Vec<Prompt> =
            self.waiting.lock().map(|w| w.values().map(|(p, _)| p.clone()).collect()).unwrap_or_default();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    fn answer(&self, id: &str, answer: Answer) -> bool {
        let entry = self.waiting.lock().ok().and_then(|mut w| w.remove(id));
        match entry {
            Some((_, tx)) => tx.send(answer).is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(id: &str) -> Prompt {
        Prompt {
            id: id.into(),
            session: "s".into(),
            client: "c".into(),
            client_name: None,
            server: "fs".into(),
            tool: "write_file".into(),
            arguments: serde_json::json!({}),
            args_hash: "h".into(),
            reason: "r".into(),
            deadline_ms: 0,
        }
    }

    #[tokio::test]
    async fn an_answer_reaches_its_prompt_once() {
        let a = HeadlessApprover::default();
        let fut = a.ask(prompt("p1"));
        assert_eq!(a.pending().len(), 1);
        assert!(a.answer("p1", Answer::once()));
        assert!(!a.answer("p1", Answer::once()), "a prompt is answered once");
        assert_eq!(fut.await, Answer::once());
        assert!(a.pending().is_empty());
    }

    #[tokio::test]
    async fn a_withdrawn_prompt_is_denied() {
        let a = HeadlessApprover::default();
        let fut = a.ask(prompt("p2"));
        a.withdraw("p2");
        assert!(!a.answer("p2", Answer::once()));
        assert_eq!(fut.await, Answer::Denied);
    }
}
