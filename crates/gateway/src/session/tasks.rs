//! Tool calls the gateway runs as tasks (MCP 2025-11-25), so a call held for a person can
//! wait as long as its prompt stays up instead of racing the client's request limit. A
//! session's client that declares the `tasks` capability, on the aggregate `/mcp` or on
//! `/mcp/<server>` whose server does not run tool calls as tasks itself, is told the
//! gateway does
//! (`capabilities.tasks.requests.tools.call`, each listed tool `taskSupport: optional`).
//! A task-augmented `tools/call` is then answered at once with its task (`working`), goes
//! through the same decision, approval, record and forwarding as any call, and its answer
//! becomes the task's result: `tasks/get` polls it (its status message says when it waits
//! for a person), `tasks/result` waits for it, `tasks/cancel` withdraws a call still
//! waiting (it never runs) or cancels it upstream, `tasks/list` lists them.
//!
//! Must never: answer a task of another session, run a call another way than every call
//! runs, or keep a finished task past its time to live.

use super::{ClientTx, Reply, Session};
use crate::message::{self, code, Envelope};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Most tasks one session keeps at once.
const MAX_TASKS: usize = 256;
/// How long a finished task is kept when the client asked for no time to live, and the
/// longest kept whatever it asked.
const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
const MAX_TTL: Duration = Duration::from_secs(3600);
/// How often a client is asked to poll.
const POLL_INTERVAL_MS: u64 = 1000;

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Working,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Working => "working",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    fn is_terminal(self) -> bool {
        self != Status::Working
    }
}

#[derive(Debug, Clone)]
struct TaskState {
    status: Status,
    message: Option<String>,
    updated_at: String,
    /// The call's answer once it came: the JSON-RPC `result`, or its `error`.
    answer: Option<Result<Value, Value>>,
}

struct Task {
    created_at: String,
    ttl: Duration,
    state: watch::Sender<TaskState>,
    finished: Option<Instant>,
    cancel: tokio_util::sync::CancellationToken,
}

/// One session's tasks by id.
#[derive(Default)]
pub(crate) struct TaskTable {
    tasks: HashMap<String, Task>,
    /// Whether this session's client was told the gateway runs tool calls as tasks.
    offered: bool,
}

impl super::State {
    /// Whether this session's client was told the gateway runs tool calls as tasks.
    pub(crate) fn tasks_offered(&self) -> bool {
        self.tasks.offered
    }
}

impl TaskTable {
    fn prune(&mut self) {
        self.tasks.retain(|_, t| t.finished.is_none_or(|at| at.elapsed() < t.ttl));
    }
}

impl Task {
    fn json(&self, id: &str) -> Value {
        let s = self.state.borrow();
        let mut task = json!({
            "taskId": id,
            "status": s.status.as_str(),
            "createdAt": self.created_at,
            "lastUpdatedAt": s.updated_at,
            "ttl": self.ttl.as_millis() as u64,
            "pollInterval": POLL_INTERVAL_MS,
        });
        if let Some(m) = &s.message {
            task["statusMessage"] = Value::String(m.clone());
        }
        task
    }
}

impl Session {
    /// Whether the gateway runs this session's task-augmented tool calls.
    pub(crate) fn offers_tasks(&self) -> bool {
        self.state().tasks_offered()
    }

    /// On a session's `initialize` answer (the server's on `/mcp/<server>`, the gateway's
    /// on `/mcp`): offers tasks when the client declared the capability and the server
    /// does not run tool calls as tasks itself.
    pub(crate) fn offer_tasks(&self, st: &mut super::State, result: &mut Value) -> bool {
        let client_has = st.init_params.as_ref().and_then(|p| p.pointer("/capabilities/tasks")).is_some();
        let server_has = result.pointer("/capabilities/tasks/requests/tools/call").is_some();
        if !client_has || server_has || !result["capabilities"].is_object() {
            return false;
        }
        result["capabilities"]["tasks"] = json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}});
        st.tasks.offered = true;
        true
    }

    /// Marks every tool of a listing as runnable as a task. The server's own `forbidden`
    /// (which SDKs write by default) says it runs no task itself; it never gets one, since
    /// the gateway runs the task and sends the server a plain call.
    pub(crate) fn tools_as_tasks(result: &mut Value) {
        for tool in result.get_mut("tools").and_then(Value::as_array_mut).into_iter().flatten() {
            let support = tool.pointer("/execution/taskSupport").and_then(Value::as_str);
            if support != Some("required") && tool.is_object() {
                if !tool["execution"].is_object() {
                    tool["execution"] = json!({});
                }
                tool["execution"]["taskSupport"] = Value::String("optional".into());
            }
        }
    }

    /// Whether `env`, a `tools/call`, asks to run as a task the gateway runs.
    pub(crate) fn wants_task(&self, env: &Envelope) -> bool {
        self.offers_tasks() && env.params().ok().is_some_and(|p| p.get("task").is_some_and(Value::is_object))
    }

    /// Runs a task-augmented call: its task answered at once, the call itself through
    /// the usual path with an answer the task keeps.
    pub(crate) async fn call_tool_as_task(self: Arc<Self>, mut env: Envelope, reply: Reply) {
        let id = env.id().map(|r| r.to_owned());
        let Ok(mut params) = env.params() else { return };
        let asked_ttl = params.pointer("/task/ttl").and_then(Value::as_u64).map(Duration::from_millis);
        let ttl = asked_ttl.unwrap_or(DEFAULT_TTL).min(MAX_TTL);
        let task_id = uuid::Uuid::now_v7().simple().to_string();
        let now = countersign_audit::now_rfc3339();
        let (state, _) = watch::channel(TaskState {
            status: Status::Working,
            message: Some("deciding".into()),
            updated_at: now.clone(),
            answer: None,
        });
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = Task { created_at: now, ttl, state, finished: None, cancel: cancel.clone() };
        let created = {
            let mut st = self.state();
            st.tasks.prune();
            if st.tasks.tasks.len() >= MAX_TASKS {
                None
            } else {
                let json = task.json(&task_id);
                st.tasks.tasks.insert(task_id.clone(), task);
                Some(json)
            }
        };
        let Some(created) = created else {
            let text = format!("this session already has {MAX_TASKS} tasks; fetch or cancel some first");
            return self.answer(reply, message::error_response(id.as_deref(), code::INVALID_REQUEST, &text));
        };
        self.answer(reply, message::result_response(id.as_deref(), &json!({ "task": created })));

        // The call goes as any call does, under an id of the gateway's own (the client may
        // reuse its request id once the task is created), with `task` taken out.
        if let Some(p) = params.as_object_mut() {
            p.remove("task");
        }
        env.set_params(&params);
        let inner = task_request_id(&task_id);
        env.set("id", message::raw(&Value::String(inner.clone()).to_string()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let me = self.clone();
        tokio::spawn(async move {
            let call = Reply::Client { tx: ClientTx::Json(tx), _in_flight: None };
            me.clone().call_tool_as(env, call, Some(task_id.clone())).await;
            let answer = tokio::select! {
                answer = rx.recv() => answer,
                () = cancel.cancelled() => {
                    me.withdraw_task_call(&inner).await;
                    return;
                }
            };
            let answer = answer.and_then(|text| Envelope::parse(&text).ok());
            let (status, kept) = match answer {
                Some(env) => match (env.get("result"), env.get("error")) {
                    (Some(r), _) => (Status::Completed, Ok(serde_json::from_str(r.get()).unwrap_or(Value::Null))),
                    (None, Some(e)) => (Status::Failed, Err(serde_json::from_str(e.get()).unwrap_or(Value::Null))),
                    _ => (Status::Failed, Err(json!({"code": code::INTERNAL_ERROR, "message": "no answer"}))),
                },
                None => (
                    Status::Failed,
                    Err(json!({"code": code::INTERNAL_ERROR, "message": "the call ended without an answer"})),
                ),
            };
            me.finish_task(&task_id, status, None, Some(kept));
        });
    }

    /// Sets a task's status message while it works (it waits for a person, it runs).
    pub(crate) fn note_task(&self, task_id: &str, note: String) {
        if let Some(t) = self.state().tasks.tasks.get(task_id) {
            t.state.send_modify(|s| {
                s.message = Some(note);
                s.updated_at = countersign_audit::now_rfc3339();
            });
        }
    }

    fn finish_task(&self, task_id: &str, status: Status, note: Option<String>, answer: Option<Result<Value, Value>>) {
        let mut st = self.state();
        let Some(t) = st.tasks.tasks.get_mut(task_id) else { return };
        if t.state.borrow().status.is_terminal() {
            return;
        }
        t.finished = Some(Instant::now());
        t.state.send_modify(|s| {
            s.status = status;
            s.message = note;
            s.updated_at = countersign_audit::now_rfc3339();
            s.answer = answer;
        });
    }

    /// A cancelled task's call: withdrawn if it still waits for a person (it never runs),
    /// else cancelled upstream as a client's cancellation would be.
    async fn withdraw_task_call(&self, inner: &str) {
        let quoted = Value::String(inner.to_string()).to_string();
        if self.give_up_wait(&quoted, "its task was cancelled") {
            return;
        }
        let note =
            format!(r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{quoted}}}}}"#);
        if let Ok(env) = Envelope::parse(&note) {
            self.handle_notification(crate::govern::methods::Operation::Cancelled, env).await;
        }
    }

    /// Answers `tasks/get`, `tasks/result`, `tasks/cancel` or `tasks/list` about the
    /// gateway's own tasks. `false` when the request is about none of them (it goes on to
    /// the server).
    pub(crate) fn answer_task_request(
        self: &Arc<Self>,
        method: &str,
        env: &Envelope,
        reply: Reply,
    ) -> Result<(), Reply> {
        let id = env.id().map(|r| r.to_owned());
        let params = env.params().unwrap_or(Value::Null);
        if method == "tasks/list" {
            if !self.offers_tasks() {
                return Err(reply);
            }
            let mut st = self.state();
            st.tasks.prune();
            let mut tasks: Vec<(String, Value)> = st.tasks.tasks.iter().map(|(k, t)| (k.clone(), t.json(k))).collect();
            drop(st);
            tasks.sort_by(|a, b| a.0.cmp(&b.0));
            let list: Vec<Value> = tasks.into_iter().map(|(_, t)| t).collect();
            self.answer(reply, message::result_response(id.as_deref(), &json!({ "tasks": list })));
            return Ok(());
        }
        let task_id = params.get("taskId").and_then(Value::as_str).unwrap_or_default().to_string();
        let found = {
            let mut st = self.state();
            st.tasks.prune();
            st.tasks.tasks.get(&task_id).map(|t| (t.state.subscribe(), t.cancel.clone()))
        };
        let Some((mut watch, cancel)) = found else {
            if self.offers_tasks() {
                let text = format!("no task `{}` in this session", crate::govern::methods::shorten(&task_id));
                self.answer(reply, message::error_response(id.as_deref(), code::INVALID_PARAMS, &text));
                return Ok(());
            }
            return Err(reply);
        };
        let task_json = |me: &Session| me.state().tasks.tasks.get(&task_id).map(|t| t.json(&task_id));
        match method {
            "tasks/get" => {
                let task = task_json(self).unwrap_or(Value::Null);
                self.answer(reply, message::result_response(id.as_deref(), &task));
            }
            "tasks/cancel" => {
                if watch.borrow().status.is_terminal() {
                    let text = "the task has already finished and cannot be cancelled";
                    self.answer(reply, message::error_response(id.as_deref(), code::INVALID_PARAMS, text));
                } else {
                    cancel.cancel();
                    self.finish_task(&task_id, Status::Cancelled, Some("cancelled by the client".into()), None);
                    let task = task_json(self).unwrap_or(Value::Null);
                    self.answer(reply, message::result_response(id.as_deref(), &task));
                }
            }
            _ => {
                // tasks/result waits for the end, on its own task.
                let me = self.clone();
                tokio::spawn(async move {
                    let done = watch.wait_for(|s| s.status.is_terminal()).await.map(|s| s.clone());
                    let related = json!({"io.modelcontextprotocol/related-task": {"taskId": task_id}});
                    let text = match done.map(|s| (s.status, s.answer)) {
                        Ok((_, Some(Ok(mut result)))) => {
                            if result.is_object() {
                                result["_meta"] = related;
                            }
                            message::result_response(id.as_deref(), &result)
                        }
                        Ok((_, Some(Err(error)))) => {
                            let text = error.get("message").and_then(Value::as_str).unwrap_or("the call failed");
                            let code = error.get("code").and_then(Value::as_i64).unwrap_or(code::INTERNAL_ERROR);
                            message::error_response(id.as_deref(), code, text)
                        }
                        Ok((status, None)) => message::error_response(
                            id.as_deref(),
                            code::INVALID_REQUEST,
                            &format!("the task ended {} without a result", status.as_str()),
                        ),
                        Err(_) => message::error_response(id.as_deref(), code::INTERNAL_ERROR, "the task is gone"),
                    };
                    me.answer(reply, text);
                });
            }
        }
        Ok(())
    }
}

/// The request id a task's call goes under (never one a client sends).
fn task_request_id(task_id: &str) -> String {
    format!("countersign-task-{task_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_but_a_required_one_is_offered_as_a_task() {
        let mut listing = json!({"tools": [
            {"name": "a"},
            {"name": "b", "execution": {"taskSupport": "forbidden"}},
            {"name": "c", "execution": {"taskSupport": "required"}},
            {"name": "d", "execution": "odd"},
        ]});
        Session::tools_as_tasks(&mut listing);
        let support: Vec<&str> = listing["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["execution"]["taskSupport"].as_str().unwrap_or("-"))
            .collect();
        assert_eq!(support, ["optional", "optional", "required", "optional"]);
    }

    #[test]
    fn a_task_reads_as_the_spec_writes_it() {
        let (state, _) = watch::channel(TaskState {
            status: Status::Working,
            message: Some("waiting for approval from x".into()),
            updated_at: "2026-12-01T00:00:01Z".into(),
            answer: None,
        });
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = Task { created_at: "2026-12-01T00:00:00Z".into(), ttl: DEFAULT_TTL, state, finished: None, cancel };
        let json = task.json("t1");
        assert_eq!(json["taskId"], "t1");
        assert_eq!(json["status"], "working");
        assert_eq!(json["statusMessage"], "waiting for approval from x");
        assert_eq!(json["ttl"], 900_000);
        assert!(json["pollInterval"].is_u64() && json["createdAt"].is_string() && json["lastUpdatedAt"].is_string());
        assert!(!Status::Working.is_terminal() && Status::Cancelled.is_terminal());
        assert!(task_request_id("t1").starts_with("countersign-task-"));
    }
}
