//! Where calls wait for a person. Identical calls (same client token, server, tool and
//! exact arguments) waiting at once share one prompt that shows how many wait; an
//! approval for once releases one of them (the person may approve all), a denial or an
//! approval for longer releases all. Each call waits with its own deadline, and leaves
//! when its client gives up (cancellation, closed session, closed connection): the
//! prompt then shows one fewer, and when nobody waits any more it is withdrawn, so an
//! answer given later runs nothing. Recently withdrawn prompts are remembered, so
//! `countersign approve` can say the call is gone instead of "unknown".
//!
//! A call its client no longer waits for, answered "pending" (see `govern::hold`), stays
//! as a *detached* waiter: its approval leaves a grant for the client's retry instead of
//! running it. An answer reaches at most one detached waiter, and none when a live
//! identical call (the retry itself) takes it; the other detached waiters are superseded.
//!
//! Must never: release more calls than the answer covers, or keep a prompt up for a
//! call that is gone.

use crate::approver::{Answer, Approver, Prompt};
use countersign_policy::GrantLength;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// Withdrawn prompts remembered for `countersign approve`'s answer.
const GONE_KEPT: usize = 256;
/// Most calls one client token may have waiting for a person at once (each holds its
/// arguments and, usually, a connection).
pub const WAITING_PER_CLIENT: usize = 64;

/// A call's client giving up: a cancellation, its session closing. Set once; the first
/// reason stays.
#[derive(Clone, Default)]
pub struct GiveUp {
    token: tokio_util::sync::CancellationToken,
    why: Arc<std::sync::OnceLock<&'static str>>,
}

impl GiveUp {
    pub fn give_up(&self, why: &'static str) {
        let _ = self.why.set(why);
        self.token.cancel();
    }

    /// Resolves when the client gives up, with why.
    pub async fn given_up(&self) -> &'static str {
        self.token.cancelled().await;
        self.why().unwrap_or("its client gave up")
    }

    /// Why the client gave up, if it did.
    pub fn why(&self) -> Option<&'static str> {
        self.token.is_cancelled().then(|| self.why.get().copied().unwrap_or("its client gave up"))
    }
}

/// Set once a waiting call was answered "pending": from then on its client no longer
/// waits for it, and its approval only leaves a grant for the retry.
#[derive(Clone, Default)]
pub struct Detach(Arc<AtomicBool>);

impl Detach {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a waiter is handed when it leaves with an answer.
enum Released {
    Answer(Answer),
    /// A detached call whose answer went to another identical call.
    Superseded,
}

/// How a call's wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited {
    Answered(Answer),
    /// A detached call: an identical call (its retry, or another detached one) took the
    /// answer, so this one leaves nothing behind.
    Superseded,
    /// No answer before the call's deadline.
    TimedOut,
    /// The call is gone: its client cancelled it, closed the session or went away.
    Gone(&'static str),
    /// Not asked: the client raised too many prompts.
    NotAdmitted,
    /// Not asked: the client already has [`WAITING_PER_CLIENT`] calls waiting.
    TooManyWaiting,
}

struct Waiter {
    no: u64,
    prompt: Prompt,
    tx: oneshot::Sender<Released>,
    detached: Detach,
}

struct Group {
    waiters: VecDeque<Waiter>,
    changed: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    groups: HashMap<String, Group>,
    gone: VecDeque<(String, &'static str)>,
    next: u64,
}

/// The waiting room in front of the approver.
#[derive(Clone)]
pub struct Approvals {
    approver: Arc<dyn Approver>,
    inner: Arc<Mutex<Inner>>,
}

fn key(p: &Prompt) -> String {
    // A plan is granted to its own session: an identical plan from another session never
    // shares its prompt (nor its answer).
    if p.plan.is_some() {
        return format!("plan\u{0}{}", p.id);
    }
    format!("{}\u{0}{}\u{0}{}\u{0}{}", p.client, p.server, p.tool, p.args_hash)
}

impl Approvals {
    pub fn new(approver: Arc<dyn Approver>) -> Self {
        Approvals { approver, inner: Arc::default() }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why prompt `id` is no longer waiting, when it was withdrawn recently.
    pub fn gone(&self, id: &str) -> Option<&'static str> {
        self.inner().gone.iter().rev().find(|(g, _)| g == id).map(|(_, why)| *why)
    }

    /// Who answers prompts, as a client is told it.
    pub fn who_answers(&self) -> String {
        self.approver.who_answers()
    }

    /// Waits for a person's answer to `prompt`, at most `timeout`, unless `gone` resolves
    /// first (with why the call is gone). `admit` is asked, once, only when the call
    /// would raise a new prompt rather than join an identical one. `detach` is set by the
    /// caller when its client stopped waiting (the call was answered "pending").
    pub async fn wait(
        &self,
        prompt: Prompt,
        timeout: Duration,
        admit: impl FnOnce() -> bool,
        gone: impl Future<Output = &'static str>,
        detach: Detach,
    ) -> Waited {
        let key = key(&prompt);
        let (tx, rx) = oneshot::channel();
        let (no, start) = {
            let mut inner = self.inner();
            let mine: usize = inner
                .groups
                .values()
                .flat_map(|g| g.waiters.iter())
                .filter(|w| w.prompt.client == prompt.client)
                .count();
            if mine >= WAITING_PER_CLIENT {
                return Waited::TooManyWaiting;
            }
            let start = !inner.groups.contains_key(&key);
            if start && !admit() {
                return Waited::NotAdmitted;
            }
            inner.next += 1;
            let no = inner.next;
            let group = inner
                .groups
                .entry(key.clone())
                .or_insert_with(|| Group { waiters: VecDeque::new(), changed: Arc::new(Notify::new()) });
            group.waiters.push_back(Waiter { no, prompt, tx, detached: detach });
            group.changed.notify_one();
            (no, start)
        };
        if start {
            tokio::spawn(self.clone().drive(key.clone()));
        }
        tokio::select! {
            released = rx => match released {
                Ok(Released::Answer(answer)) => Waited::Answered(answer),
                Ok(Released::Superseded) => Waited::Superseded,
                Err(_) => Waited::Answered(Answer::Denied),
            },
            () = tokio::time::sleep(timeout) => {
                self.leave(&key, no, "its approval timed out");
                Waited::TimedOut
            }
            why = gone => {
                self.leave(&key, no, why);
                Waited::Gone(why)
            }
        }
    }

    /// Takes one waiter out of its group; the prompt follows (fewer, or withdrawn).
    fn leave(&self, key: &str, no: u64, why: &'static str) {
        let mut inner = self.inner();
        let Some(group) = inner.groups.get_mut(key) else { return };
        let Some(at) = group.waiters.iter().position(|w| w.no == no) else { return };
        if let Some(w) = group.waiters.remove(at) {
            let id = w.prompt.id;
            group.changed.notify_one();
            inner.gone.push_back((id, why));
            if inner.gone.len() > GONE_KEPT {
                inner.gone.pop_front();
            }
        }
    }

    /// The front waiter's prompt, counting all waiting; `None` (and the group gone) when
    /// nobody waits.
    fn current(&self, key: &str) -> Option<(Prompt, Arc<Notify>)> {
        let mut inner = self.inner();
        let group = inner.groups.get(key)?;
        match group.waiters.front() {
            Some(front) => {
                let mut p = front.prompt.clone();
                p.waiting = group.waiters.len();
                Some((p, group.changed.clone()))
            }
            None => {
                inner.groups.remove(key);
                None
            }
        }
    }

    /// Raises the group's prompt and hands out answers until nobody waits.
    async fn drive(self, key: String) {
        while let Some((prompt, changed)) = self.current(&key) {
            let id = prompt.id.clone();
            let mut shown = prompt.waiting;
            let mut asked = self.approver.ask(prompt.clone());
            let answer = loop {
                tokio::select! {
                    answer = &mut asked => break Some(answer),
                    () = changed.notified() => match self.current(&key) {
                        Some((now, _)) if now.id == id => {
                            if now.waiting != shown {
                                shown = now.waiting;
                                self.approver.update(&now);
                            }
                        }
                        // The call it showed is gone: withdraw it (the next is asked next).
                        _ => {
                            self.approver.withdraw(&id);
                            break None;
                        }
                    },
                }
            };
            if let Some(answer) = answer {
                self.deliver(&key, &id, answer);
            }
        }
    }

    /// Gives `answer` to the calls it covers: a denial to all; an approval once to as many
    /// as the person saw and chose, from the front; a grant for the session to the calls of
    /// the session shown; a grant for a while to all (it covers them). The rest wait on.
    fn deliver(&self, key: &str, id: &str, answer: Answer) {
        let mut inner = self.inner();
        let Some(group) = inner.groups.get_mut(key) else { return };
        if group.waiters.front().is_none_or(|w| w.prompt.id != id) {
            return;
        }
        let session = group.waiters.front().map(|w| w.prompt.session.clone()).unwrap_or_default();
        let once = match &answer {
            Answer::Approved { length: GrantLength::Once, count, .. } => Some(*count),
            Answer::Routed { approved: true, .. } => Some(1),
            _ => None,
        };
        let released: Vec<Waiter> = match &answer {
            Answer::Denied | Answer::Refused(_) | Answer::Routed { approved: false, .. } => {
                group.waiters.drain(..).collect()
            }
            _ if once.is_some() => {
                // Calls still waiting come first: a retry runs rather than leaving a grant.
                let n = once.unwrap_or(1).clamp(1, group.waiters.len());
                let live: Vec<u64> =
                    group.waiters.iter().filter(|w| !w.detached.is_set()).take(n).map(|w| w.no).collect();
                let chosen: Vec<u64> = match live.is_empty() {
                    true => group.waiters.front().map(|w| w.no).into_iter().collect(),
                    false => live,
                };
                let (out, stay): (VecDeque<Waiter>, VecDeque<Waiter>) =
                    group.waiters.drain(..).partition(|w| chosen.contains(&w.no));
                group.waiters = stay;
                out.into_iter().collect()
            }
            Answer::Approved { length: GrantLength::Session, .. } => {
                let (same, others): (VecDeque<Waiter>, VecDeque<Waiter>) =
                    group.waiters.drain(..).partition(|w| w.prompt.session == session);
                group.waiters = others;
                same.into_iter().collect()
            }
            Answer::Approved { .. } | Answer::Routed { .. } => group.waiters.drain(..).collect(),
        };
        // At most one detached call takes the answer (it leaves one grant), and none when a
        // live call took it; detached calls left behind are superseded too.
        let live_took_it = released.iter().any(|w| !w.detached.is_set());
        let mut detached_took_it = false;
        for w in released {
            let to_this = match w.detached.is_set() {
                false => true,
                true if live_took_it || detached_took_it => false,
                true => {
                    detached_took_it = true;
                    true
                }
            };
            let _ = w.tx.send(if to_this { Released::Answer(answer.clone()) } else { Released::Superseded });
        }
        let (superseded, waiting): (VecDeque<Waiter>, VecDeque<Waiter>) =
            group.waiters.drain(..).partition(|w| w.detached.is_set());
        group.waiters = waiting;
        for w in superseded {
            let _ = w.tx.send(Released::Superseded);
        }
        if group.waiters.is_empty() {
            inner.groups.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approver::HeadlessApprover;

    fn prompt(id: &str) -> Prompt {
        Prompt { client: "cursor".into(), ..Prompt::example(id) }
    }

    async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::task::yield_now().await;
        }
    }

    fn spawn_wait(
        a: &Approvals,
        id: &str,
        gone: tokio::sync::oneshot::Receiver<()>,
    ) -> tokio::task::JoinHandle<Waited> {
        let a = a.clone();
        let p = prompt(id);
        tokio::spawn(async move {
            a.wait(
                p,
                Duration::from_secs(60),
                || true,
                async move {
                    let _ = gone.await;
                    "cancelled by its client"
                },
                Detach::default(),
            )
            .await
        })
    }

    #[tokio::test]
    async fn approving_once_releases_one_of_five_identical_calls() {
        let headless = Arc::new(HeadlessApprover::default());
        let a = Approvals::new(headless.clone());
        let mut keep = Vec::new();
        let mut calls = Vec::new();
        for i in 0..5 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            keep.push(tx);
            calls.push(spawn_wait(&a, &format!("p{i}"), rx));
        }
        let shown = until("one prompt for five", || {
            let p = headless.pending();
            (p.len() == 1 && p[0].waiting == 5).then(|| p[0].clone())
        })
        .await;
        assert!(headless.answer(&shown.id, None, Answer::once()).is_ok());
        let released = until("one call released", || calls.iter().position(|c| c.is_finished())).await;
        let next = until("the prompt again for four", || {
            let p = headless.pending();
            (p.len() == 1 && p[0].waiting == 4).then(|| p[0].clone())
        })
        .await;
        assert_ne!(next.id, shown.id);
        assert_eq!(calls.iter().filter(|c| c.is_finished()).count(), 1, "only one ran");
        assert_eq!(calls.remove(released).await.unwrap(), Waited::Answered(Answer::once()));
        // "All" releases the four the person saw, and not a fifth that joined after.
        let (_keep_late, late_rx) = tokio::sync::oneshot::channel();
        let late = spawn_wait(&a, "late", late_rx);
        until("the late call to join", || (headless.pending().first().map(|p| p.waiting) == Some(5)).then_some(()))
            .await;
        assert!(headless.answer(&next.id, None, Answer::once_for(4)).is_ok());
        for c in calls {
            assert_eq!(c.await.unwrap(), Waited::Answered(Answer::once_for(4)));
        }
        let last = until("the prompt for the late one", || {
            let p = headless.pending();
            (p.len() == 1 && p[0].waiting == 1).then(|| p[0].clone())
        })
        .await;
        assert!(!late.is_finished(), "not released by an answer given before it joined");
        assert!(headless.answer(&last.id, None, Answer::Denied).is_ok());
        assert_eq!(late.await.unwrap(), Waited::Answered(Answer::Denied));
        drop(keep);
    }

    #[tokio::test]
    async fn a_call_that_is_gone_withdraws_its_prompt_and_a_late_answer_runs_nothing() {
        let headless = Arc::new(HeadlessApprover::default());
        let a = Approvals::new(headless.clone());
        let (cancel, rx) = tokio::sync::oneshot::channel();
        let call = spawn_wait(&a, "p1", rx);
        until("the prompt", || (!headless.pending().is_empty()).then_some(())).await;
        cancel.send(()).unwrap();
        assert_eq!(call.await.unwrap(), Waited::Gone("cancelled by its client"));
        until("the prompt withdrawn", || headless.pending().is_empty().then_some(())).await;
        assert!(headless.answer("p1", None, Answer::once()).is_err(), "nothing is left to approve");
        assert_eq!(a.gone("p1"), Some("cancelled by its client"));
    }

    #[tokio::test]
    async fn a_denial_denies_every_identical_call_and_admit_is_asked_once() {
        let headless = Arc::new(HeadlessApprover::default());
        let a = Approvals::new(headless.clone());
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut calls = Vec::new();
        for i in 0..3 {
            let (a, asked) = (a.clone(), asked.clone());
            calls.push(tokio::spawn(async move {
                let admit = || {
                    asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    true
                };
                let p = prompt(&format!("d{i}"));
                a.wait(p, Duration::from_secs(60), admit, std::future::pending(), Detach::default()).await
            }));
            until("the call to join", || (headless.pending().first().map(|p| p.waiting) == Some(i + 1)).then_some(()))
                .await;
        }
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1, "joining an identical prompt raises none");
        let id = headless.pending()[0].id.clone();
        assert!(headless.answer(&id, None, Answer::Denied).is_ok());
        for c in calls {
            assert_eq!(c.await.unwrap(), Waited::Answered(Answer::Denied));
        }
        let refused =
            a.wait(prompt("x"), Duration::from_secs(1), || false, std::future::pending(), Detach::default()).await;
        assert_eq!(refused, Waited::NotAdmitted);
    }

    fn spawn_detachable(a: &Approvals, id: &str, detach: Detach) -> tokio::task::JoinHandle<Waited> {
        let (a, p) = (a.clone(), prompt(id));
        tokio::spawn(async move { a.wait(p, Duration::from_secs(60), || true, std::future::pending(), detach).await })
    }

    #[tokio::test]
    async fn an_approval_runs_the_retry_and_supersedes_the_call_answered_pending() {
        let headless = Arc::new(HeadlessApprover::default());
        let a = Approvals::new(headless.clone());
        let first = Detach::default();
        let pending = spawn_detachable(&a, "p1", first.clone());
        until("the prompt", || (!headless.pending().is_empty()).then_some(())).await;
        first.set();
        let retry = spawn_detachable(&a, "p2", Detach::default());
        let shown = until("the retry to join", || {
            let p = headless.pending();
            (p.first().map(|p| p.waiting) == Some(2)).then(|| p[0].clone())
        })
        .await;
        assert_eq!(shown.id, "p1", "the prompt shown is the first call's");
        assert!(headless.answer(&shown.id, None, Answer::once()).is_ok());
        assert_eq!(retry.await.unwrap(), Waited::Answered(Answer::once()), "the live retry runs");
        assert_eq!(pending.await.unwrap(), Waited::Superseded, "the pending call leaves no grant");
        until("nothing left to ask", || headless.pending().is_empty().then_some(())).await;
    }

    #[tokio::test]
    async fn of_several_calls_answered_pending_one_takes_the_approval() {
        let headless = Arc::new(HeadlessApprover::default());
        let a = Approvals::new(headless.clone());
        let mut calls = Vec::new();
        for i in 0..3 {
            let detach = Detach::default();
            calls.push(spawn_detachable(&a, &format!("q{i}"), detach.clone()));
            until("the call to join", || (headless.pending().first().map(|p| p.waiting) == Some(i + 1)).then_some(()))
                .await;
            detach.set();
        }
        let id = headless.pending()[0].id.clone();
        assert!(headless
            .answer(
                &id,
                None,
                Answer::Approved { length: GrantLength::Hour1, condition: None, count: 3, similar: false }
            )
            .is_ok());
        let mut outcomes = Vec::new();
        for c in calls {
            outcomes.push(c.await.unwrap());
        }
        let took = outcomes.iter().filter(|w| matches!(w, Waited::Answered(_))).count();
        assert_eq!(took, 1, "one grant, not three: {outcomes:?}");
        assert_eq!(outcomes.iter().filter(|w| **w == Waited::Superseded).count(), 2);
    }
}
