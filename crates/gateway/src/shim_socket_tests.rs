//! The shim socket against an in-process gateway and upstream: the hello and its proof,
//! one session a connection as the shim's client, errors as lines, the project rule, and
//! how the socket file is made, replaced and removed.

use super::unix::bind;
use super::SocketError;
use crate::session::testkit::{self, wait_until, TestGateway, Upstream};
use crate::shim_wire::{Hello, Welcome, SOCKET_PLACE};
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

const NONCE: &str = "a-test-nonce-0123456789";

/// A client on the shim socket, reading the gateway's lines.
struct Client {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Connects and sends `hello`; returns the client and the gateway's answer.
    async fn hello(gw: &TestGateway, hello: &[u8]) -> (Client, Welcome) {
        let stream = UnixStream::connect(gw.home.shim_socket_path()).await.expect("the socket answers");
        let (reader, writer) = stream.into_split();
        let mut client = Client { lines: BufReader::new(reader).lines(), writer };
        client.writer.write_all(hello).await.unwrap();
        let welcome = client.line().await.expect("an answer to the hello");
        (client, Welcome::parse(welcome.as_bytes()).unwrap())
    }

    async fn connect(gw: &TestGateway, server: &str, project: Option<&str>) -> Client {
        let hello = Hello::new(server, project.map(std::path::Path::new), NONCE);
        let (client, welcome) = Client::hello(gw, &hello.line()).await;
        match welcome {
            Welcome::Ok { proof, .. } => {
                assert!(crate::gateway_link::check_at(&gw.running.shared.control_token, NONCE, SOCKET_PLACE, &proof));
            }
            Welcome::Error { error } => panic!("hello refused: {error}"),
        }
        client
    }

    async fn send(&mut self, message: &Value) {
        self.writer.write_all(format!("{message}\n").as_bytes()).await.unwrap();
    }

    async fn line(&mut self) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(10), self.lines.next_line()).await.expect("a line in time").unwrap()
    }

    async fn next(&mut self) -> Value {
        serde_json::from_str(&self.line().await.expect("a message")).unwrap()
    }

    async fn initialize(&mut self) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "sock", "version": "1"}}}))
            .await;
        let answer = self.next().await;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        answer
    }
}

#[tokio::test]
async fn a_connection_is_one_session_as_the_shims_client_and_ends_with_the_connection() {
    let up = Upstream::start().await;
    let gw = testkit::gateway_with(&up).await;
    let mut client = Client::connect(&gw, "up", None).await;
    let init = client.initialize().await;
    assert_eq!(init["id"], 0, "{init}");
    assert!(init.get("result").is_some(), "{init}");
    client
        .send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": "by socket"}}}))
        .await;
    let answer = client.next().await;
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["result"]["content"][0]["text"], "echo:by socket", "{answer}");
    up.wait_for("tools/call", |m| m["params"]["arguments"]["text"] == "by socket").await;
    let sessions = gw.running.gateway().status().sessions;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].client, crate::tokens::SHIM_TOKEN_NAME, "the client is the shim's, from no token");
    let records = gw.records().await;
    let call = records.iter().find(|r| r["tool"] == "echo").expect("the call's record");
    assert_eq!(call["client"], "stdio-shim");
    assert_eq!(call["decision"], "allow");

    drop(client);
    wait_until("the session to end with its connection", || {
        gw.running.gateway().status().sessions.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_line_that_is_no_message_is_answered_with_an_error_and_the_connection_goes_on() {
    let up = Upstream::start().await;
    let gw = testkit::gateway(&format!(
        "[limits]\nmax_body_bytes = 2048\n[servers.up]\nurl = \"{}\"\n[policy]\nallow = [\"mcp__up__*\"]\n",
        up.url
    ))
    .await;
    let mut client = Client::connect(&gw, "up", None).await;
    client.writer.write_all(b"not json at all\n").await.unwrap();
    let e = client.next().await;
    assert_eq!(e["error"]["code"], -32700, "{e}");
    client.writer.write_all(format!("{{\"x\":\"{}\"}}\n", "y".repeat(5000)).as_bytes()).await.unwrap();
    let e = client.next().await;
    assert_eq!(e["error"]["code"], -32600, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("2048-byte limit"), "{e}");
    client.writer.write_all(b"\n   \n\xff\xfe\n").await.unwrap();
    let e = client.next().await;
    assert_eq!(e["error"]["code"], -32700, "blank lines are nothing, bytes that are not UTF-8 an error: {e}");
    client.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    let e = client.next().await;
    assert_eq!((e["id"].clone(), e["error"]["message"].clone()), (json!(1), json!("initialize first")));
    client.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/Call"})).await;
    let e = client.next().await;
    assert_eq!(e["error"]["code"], -32601, "the method table refuses what it does not name: {e}");
    let init = client.initialize().await;
    assert!(init.get("result").is_some(), "after all that, the session opens: {init}");
    assert!(up.messages("tools/list").is_empty() && up.messages("tools/Call").is_empty());
}

#[tokio::test]
async fn a_bad_hello_is_answered_and_the_connection_closed() {
    let up = Upstream::start().await;
    let gw = testkit::gateway_with(&up).await;
    for (hello, why) in [
        (Hello::new("nosuch", None, NONCE).line(), "no server named `nosuch`"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}\n".to_vec(), "must be a hello"),
        (vec![b'x'; 20_000], "at most 8192 bytes"),
    ] {
        let (mut client, welcome) = Client::hello(&gw, &[hello, b"\n".to_vec()].concat()).await;
        match welcome {
            Welcome::Error { error } => assert!(error.contains(why), "{error}"),
            other => panic!("accepted: {other:?}"),
        }
        assert_eq!(client.line().await, None, "closed after the refusal");
    }
    assert!(up.messages("initialize").is_empty());
}

#[tokio::test]
async fn a_connection_for_one_project_cannot_reach_another_projects_server() {
    let up = Upstream::start().await;
    let gw = testkit::gateway(&format!(
        "[servers.up]\nurl = \"{}\"\nproject = \"/work/shop\"\n[policy]\nallow = [\"mcp__up__*\"]\n",
        up.url
    ))
    .await;
    for project in [None, Some("/work/other"), Some("/work/shop/sub")] {
        let mut client = Client::connect(&gw, "up", project).await;
        let refused = client.initialize().await;
        let text = refused["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(text.contains("serves only that project's own entries"), "{project:?}: {refused}");
    }
    assert!(up.messages("initialize").is_empty(), "the project's server never heard from another client");
    let records = gw.records().await;
    let scoped: Vec<&Value> = records.iter().filter(|r| r["rule"] == "scope:project").collect();
    assert_eq!(scoped.len(), 3, "each refusal is recorded");
    assert_eq!(scoped[0]["client"], "stdio-shim");

    let mut client = Client::connect(&gw, "up", Some("/work/shop")).await;
    let init = client.initialize().await;
    assert!(init.get("result").is_some(), "the project's own connection: {init}");
    let sessions = gw.running.gateway().status().sessions;
    assert_eq!(sessions[0].client, crate::tokens::project_token_name(std::path::Path::new("/work/shop")));
}

fn home() -> (tempfile::TempDir, crate::Home) {
    let dir = tempfile::tempdir().unwrap();
    let home = crate::Home::at(dir.path().join("h")).unwrap();
    (dir, home)
}

#[tokio::test]
async fn the_socket_is_0600_in_a_0700_folder_and_removed_when_dropped() {
    let (_dir, home) = home();
    let (listener, file) = bind(&home).unwrap();
    let path = home.shim_socket_path();
    let m = std::fs::symlink_metadata(&path).unwrap();
    assert!(m.file_type().is_socket());
    assert_eq!(m.mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(home.dir()).unwrap().mode() & 0o777, 0o700);
    assert_eq!(std::fs::read_dir(home.dir()).unwrap().count(), 1, "no temporary name left behind");
    drop(listener);
    drop(file);
    assert!(std::fs::symlink_metadata(&path).is_err(), "removed");

    // A file put in its place since is not this gateway's to remove.
    let (_listener, file) = bind(&home).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "someone else's").unwrap();
    drop(file);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "someone else's");
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_anything_else_is_left_alone() {
    let (_dir, home) = home();
    let path = home.shim_socket_path();
    // A socket nobody answers on (a crashed gateway's): replaced.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    let old = std::fs::symlink_metadata(&path).unwrap().ino();
    let (listener, file) = bind(&home).expect("a stale socket is replaced");
    assert_ne!(std::fs::symlink_metadata(&path).unwrap().ino(), old);

    // A socket someone answers on: left alone.
    match bind(&home) {
        Err(SocketError::InUse { .. }) => {}
        other => panic!("a live socket: {:?}", other.map(|_| ())),
    }
    drop((listener, file));

    // A link (to a file, or to a socket), a file, a folder: never followed, never removed.
    let target = home.dir().join("target.txt");
    std::fs::write(&target, "keep").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    assert!(matches!(bind(&home), Err(SocketError::Unsafe { .. })));
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o640, "the link's target is untouched");
    std::fs::remove_file(&path).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let live = std::os::unix::net::UnixListener::bind(elsewhere.path().join("s")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("s"), &path).unwrap();
    assert!(matches!(bind(&home), Err(SocketError::Unsafe { .. })), "a link to a socket is a link");
    drop(live);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "a file").unwrap();
    assert!(matches!(bind(&home), Err(SocketError::Unsafe { .. })));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a file");
    std::fs::remove_file(&path).unwrap();

    // A folder others may enter: no socket in it.
    std::fs::set_permissions(home.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(bind(&home), Err(SocketError::Unsafe { .. })));
    assert!(std::fs::symlink_metadata(&path).is_err());
}

#[tokio::test]
async fn stopping_the_gateway_ends_every_connection_and_removes_the_socket() {
    let up = Upstream::start().await;
    let gw = testkit::gateway_with(&up).await;
    let mut client = Client::connect(&gw, "up", None).await;
    assert!(client.initialize().await.get("result").is_some());
    let path = gw.home.shim_socket_path();
    let running = gw.running;
    running.until(async {}).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), client.lines.next_line()).await.expect("in time");
    assert!(matches!(end, Ok(None) | Err(_)), "the connection ended with the gateway: {end:?}");
    assert!(std::fs::symlink_metadata(&path).is_err(), "the socket is gone");
    let late = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let _ = client.writer.write_all(format!("{late}\n").as_bytes()).await;
    assert!(up.messages("tools/list").is_empty(), "nothing reaches a server after the stop");
}

#[tokio::test]
async fn an_approved_call_on_the_socket_runs_with_no_token_in_the_store() {
    // A socket session's client holds no token (the keychain may not even exist): the
    // check that an approved call's token was not revoked meanwhile is for HTTP sessions.
    let up = Upstream::start().await;
    let gw =
        testkit::gateway(&format!("[servers.up]\nurl = \"{}\"\n[policy]\nask = [\"mcp__up__echo\"]\n", up.url)).await;
    let _ = crate::tokens::TokenStore::revoke(&gw.home, crate::tokens::SHIM_TOKEN_NAME);
    let mut client = Client::connect(&gw, "up", None).await;
    assert!(client.initialize().await.get("result").is_some());
    client
        .send(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"text": "asked"}}}))
        .await;
    let api = gw.running.gateway();
    let prompt = wait_until("the prompt", || api.pending().into_iter().next()).await;
    assert_eq!(prompt.client, "stdio-shim");
    let approve = crate::api::AnswerRequest::parse("allow", None, None, None, None).unwrap();
    api.answer(&prompt.id, approve).expect("approved");
    let answer = client.next().await;
    assert_eq!(answer["result"]["content"][0]["text"], "echo:asked", "{answer}");
    up.wait_for("tools/call", |m| m["params"]["arguments"]["text"] == "asked").await;
}
