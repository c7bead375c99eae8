//! Test support, compiled only for tests: an in-process MCP upstream on a loopback port
//! (a hand-written HTTP/1.1 server, so a test decides exactly when it answers and when it
//! drops a connection), a gateway started in-process against it, and a client for the
//! gateway's HTTP face. It must never be used outside `#[cfg(test)]` code.

#![allow(dead_code)]

use crate::{Config, Home, Running};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the upstream was sent: every JSON-RPC message, and every request's HTTP headers.
#[derive(Default)]
pub struct Seen {
    pub messages: Vec<Value>,
    pub requests: Vec<(String, Vec<(String, String)>)>,
}

/// An MCP server over streamable HTTP on 127.0.0.1. Tools: `echo` (answers its `text`),
/// `slow` (answers once [`Upstream::release`] is called), `die` (drops the connection
/// without answering), `fail500` (answers HTTP 500), `change` (adds a tool, then answers
/// on an SSE stream that first carries `notifications/tools/list_changed`).
pub struct Upstream {
    pub url: String,
    pub seen: Arc<Mutex<Seen>>,
    gate: Arc<tokio::sync::watch::Sender<bool>>,
    extra_tools: Arc<Mutex<usize>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        Self::serve(false).await
    }

    /// An upstream that also speaks 2026-07-28: a request with that `MCP-Protocol-Version`
    /// is answered statelessly (`server/discover`, hints on listings, `resultType`,
    /// `input_required` from the `ask` tool, 404 for a method it lacks).
    pub async fn start_stateless() -> Upstream {
        Self::serve(true).await
    }

    async fn serve(stateless: bool) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the test upstream");
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let up = Upstream {
            url,
            seen: Default::default(),
            gate: Arc::new(tokio::sync::watch::Sender::new(false)),
            extra_tools: Default::default(),
        };
        let (seen, gate, extra) = (up.seen.clone(), up.gate.clone(), up.extra_tools.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (seen, gate, extra) = (seen.clone(), gate.clone(), extra.clone());
                tokio::spawn(async move {
                    let _ = serve_connection(conn, seen, gate, extra, stateless).await;
                });
            }
        });
        up
    }

    /// Lets every `slow` call answer, those waiting now and those to come (a flag, not a
    /// wake-up: a call that reaches its wait after the release must not hang).
    pub fn release(&self) {
        self.gate.send_replace(true);
    }

    /// The messages seen so far with this method.
    pub fn messages(&self, method: &str) -> Vec<Value> {
        let seen = self.seen.lock().unwrap();
        seen.messages.iter().filter(|m| m["method"] == method).cloned().collect()
    }

    /// Waits (with a deadline) until a message with `method` matching `pick` arrived.
    pub async fn wait_for(&self, method: &str, pick: impl Fn(&Value) -> bool) -> Value {
        let m = method.to_string();
        wait_until(&format!("the upstream to receive `{method}`"), || self.messages(&m).into_iter().find(|v| pick(v)))
            .await
    }
}

/// Polls `probe` until it gives a value, failing the test after 10 s.
pub async fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn tools(extra: usize) -> Value {
    let mut list = vec![
        json!({"name": "echo", "description": "Returns its text", "inputSchema": {"type": "object"},
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "slow", "description": "Answers when released", "inputSchema": {"type": "object"},
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "die", "description": "Never answers", "inputSchema": {"type": "object"},
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "fail500", "description": "Fails", "inputSchema": {"type": "object"},
               "annotations": {"readOnlyHint": true}}),
        json!({"name": "change", "description": "Adds a tool", "inputSchema": {"type": "object"},
               "annotations": {"readOnlyHint": true}}),
    ];
    for i in 0..extra {
        list.push(json!({"name": format!("added_{i}"), "description": "Added", "inputSchema": {"type": "object"},
                         "annotations": {"readOnlyHint": true}}));
    }
    Value::Array(list)
}

fn result(id: &Value, result: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

async fn respond(conn: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\nmcp-session-id: up-session\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.flush().await
}

async fn serve_connection(
    conn: TcpStream,
    seen: Arc<Mutex<Seen>>,
    gate: Arc<tokio::sync::watch::Sender<bool>>,
    extra: Arc<Mutex<usize>>,
    stateless: bool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let method = line.split_whitespace().next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let modern = stateless && headers.iter().any(|(k, v)| k == "mcp-protocol-version" && v == "2026-07-28");
        seen.lock().unwrap().requests.push((method.clone(), headers));
        let conn = reader.get_mut();
        if method != "POST" {
            // No GET stream; a DELETE ends the session.
            let status = if method == "DELETE" { "200 OK" } else { "405 Method Not Allowed" };
            respond(conn, status, "application/json", "").await?;
            continue;
        }
        let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        seen.lock().unwrap().messages.push(msg.clone());
        let id = msg.get("id").cloned();
        let Some(id) = id else {
            respond(conn, "202 Accepted", "application/json", "").await?;
            continue;
        };
        let json = "application/json";
        if modern {
            let n = *extra.lock().unwrap();
            answer_stateless(conn, &msg, &id, n).await?;
            continue;
        }
        match msg["method"].as_str().unwrap_or_default() {
            "initialize" => {
                let r = json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": true}},
                               "serverInfo": {"name": "test-upstream", "version": "1"}});
                respond(conn, "200 OK", json, &result(&id, r)).await?;
            }
            "tools/list" => {
                let n = *extra.lock().unwrap();
                respond(conn, "200 OK", json, &result(&id, json!({"tools": tools(n)}))).await?;
            }
            "tools/call" => {
                let name = msg["params"]["name"].as_str().unwrap_or_default().to_string();
                let text = msg["params"]["arguments"]["text"].as_str().unwrap_or_default().to_string();
                let done = json!({"content": [{"type": "text", "text": format!("{name}:{text}")}]});
                match name.as_str() {
                    "slow" => {
                        let _ = gate.subscribe().wait_for(|released| *released).await;
                        respond(conn, "200 OK", json, &result(&id, done)).await?;
                    }
                    // Gone mid-call: the connection closes with no answer.
                    "die" => return Ok(()),
                    "fail500" => respond(conn, "500 Internal Server Error", "text/plain", "broken").await?,
                    "change" => {
                        *extra.lock().unwrap() += 1;
                        let note = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
                        let sse =
                            format!("event: message\ndata: {note}\n\nevent: message\ndata: {}\n\n", result(&id, done));
                        respond(conn, "200 OK", "text/event-stream", &sse).await?;
                    }
                    _ => respond(conn, "200 OK", json, &result(&id, done)).await?,
                }
            }
            _ => {
                let e = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no such method"}});
                respond(conn, "200 OK", json, &e.to_string()).await?;
            }
        }
    }
}

/// A 2026-07-28 answer: each request on its own, no session.
async fn answer_stateless(conn: &mut TcpStream, msg: &Value, id: &Value, extra: usize) -> std::io::Result<()> {
    let json = "application/json";
    let done = |mut r: Value| {
        r["resultType"] = json!("complete");
        result(id, r)
    };
    match msg["method"].as_str().unwrap_or_default() {
        "server/discover" => {
            let r = json!({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {"listChanged": true}},
                           "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "test-upstream", "version": "1"}}});
            respond(conn, "200 OK", json, &done(r)).await
        }
        "tools/list" => {
            let mut list = tools(extra);
            if let Some(list) = list.as_array_mut() {
                list.push(json!({"name": "ask", "description": "Asks first", "inputSchema": {"type": "object"},
                                 "annotations": {"readOnlyHint": true}}));
            }
            let r = json!({"tools": list, "ttlMs": 60000, "cacheScope": "public"});
            respond(conn, "200 OK", json, &done(r)).await
        }
        "tools/call" if msg["params"]["name"] == "ask" && msg["params"].get("inputResponses").is_none() => {
            let r = json!({"resultType": "input_required", "requestState": "s1",
                           "inputRequests": {"q": {"method": "elicitation/create", "params": {"message": "?"}}}});
            respond(conn, "200 OK", json, &result(id, r)).await
        }
        "tools/call" => {
            let name = msg["params"]["name"].as_str().unwrap_or_default();
            let text = msg["params"]["arguments"]["text"].as_str().unwrap_or_default();
            respond(
                conn,
                "200 OK",
                json,
                &done(json!({"content": [{"type": "text", "text": format!("{name}:{text}")}]})),
            )
            .await
        }
        _ => {
            let e = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no such method"}});
            respond(conn, "404 Not Found", json, &e.to_string()).await
        }
    }
}

/// A gateway started in this process, with a client token.
pub struct TestGateway {
    pub base: String,
    pub token: String,
    pub home: Home,
    pub running: Running,
    _dir: tempfile::TempDir,
}

/// Starts a gateway whose config is `extra` (servers, policy, limits) after a loopback
/// listener on a free port.
pub async fn gateway(extra: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("home")).unwrap();
    let text = format!("[gateway]\nlisten = \"127.0.0.1:0\"\n{extra}");
    let config = Config::parse(&text, None).expect("test config");
    let running = crate::start(config, home.clone()).await.expect("the gateway starts");
    let token = crate::tokens::TokenStore::create(&home, "test").unwrap();
    TestGateway { base: format!("http://{}", running.listen), token, home, running, _dir: dir }
}

/// A gateway with the test upstream as server `up`, every tool of it allowed.
pub async fn gateway_with(up: &Upstream) -> TestGateway {
    gateway(&format!(
        "[servers.up]\nurl = \"{}\"\nheaders = {{ Authorization = \"Bearer upstream-test\" }}\n[policy]\nallow = [\"mcp__up__*\"]\n",
        up.url
    ))
    .await
}

/// What the gateway answered one POST.
pub struct Reply {
    pub status: u16,
    pub session: Option<String>,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    /// The JSON-RPC message in the body: of an SSE body, the answer (the first event with
    /// an id and a result or error), else its first event.
    pub fn json(&self) -> Value {
        let events = self.events();
        if let Some(answer) = events.iter().find(|e| e.get("id").is_some() && e.get("method").is_none()) {
            return answer.clone();
        }
        let text = self.body.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or(&self.body);
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Every JSON-RPC message of an SSE body, in order.
    pub fn events(&self) -> Vec<Value> {
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    }
}

impl TestGateway {
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    /// POSTs `body` to `path` with the client token (and `session`, when given).
    pub async fn post(&self, path: &str, session: Option<&str>, body: &str) -> Reply {
        self.post_with(path, session, body, "application/json, text/event-stream", &[]).await
    }

    pub async fn post_with(
        &self,
        path: &str,
        session: Option<&str>,
        body: &str,
        accept: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .client()
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", accept)
            .body(body.to_string());
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("the gateway answers");
        let status = resp.status().as_u16();
        let session = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        Reply { status, session, content_type, body: resp.text().await.unwrap_or_default() }
    }

    /// Opens a session on `path` (initialize, then initialized) and returns its id.
    pub async fn open(&self, path: &str) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let reply = self.post(path, None, &init.to_string()).await;
        assert_eq!(reply.status, 200, "initialize: {}", reply.body);
        let session = reply.session.expect("a session id");
        let done = self.post(path, Some(&session), r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
        assert_eq!(done.status, 202, "initialized: {}", done.body);
        session
    }

    /// `tools/call` of `tool` with `{"text": text}` and the request id `id`.
    pub async fn call(&self, path: &str, session: &str, id: Value, tool: &str, text: &str) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": tool, "arguments": {"text": text}}});
        self.post(path, Some(session), &body.to_string()).await.json()
    }

    /// Waits (at most 10 s) until the journal's records satisfy `found`, which picks what
    /// the caller wants from them; outcomes waiting to be committed are flushed each time.
    pub async fn wait_records<T>(&self, what: &str, mut found: impl FnMut(Vec<Value>) -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            self.running.shared.journal.flush_outcomes();
            if let Some(value) = found(self.records().await) {
                return value;
            }
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The journal's records, oldest first.
    pub async fn records(&self) -> Vec<Value> {
        let reader = countersign_audit::Journal::open_read_only(&self.home.journal_path()).await.unwrap();
        let mut out = Vec::new();
        reader.export_jsonl(&mut out).await.unwrap();
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}
