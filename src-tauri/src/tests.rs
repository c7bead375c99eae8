//! The app assembled on Tauri's mock runtime, its commands called as a window calls them
//! (through IPC, arguments and errors serialised), with a real gateway in a temporary
//! data directory; and the UI's generated TypeScript types checked against the Rust ones.

use crate::state::AppState;
use countersign_gateway::approver::{Answer, Approver, Prompt};
use countersign_gateway::{Config, Home};
use serde_json::{json, Value};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY};
use tauri::{App, Manager, WebviewWindow, WebviewWindowBuilder};

/// The app on the mock runtime, its gateway listening on `listen`, and a window to call
/// its commands from. The temporary data directory lives as long as the app.
struct TestApp {
    app: App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
    _dir: tempfile::TempDir,
}

fn start(config: &str, prepare: impl FnOnce(&Home)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("data")).unwrap();
    prepare(&home);
    let config = Config::parse(config, None).unwrap();
    let launch = crate::Launch { home, config, desktop: false };
    let mut app = crate::app(mock_builder(), launch).build(mock_context(noop_assets())).unwrap();
    // The set-up (starting the gateway) runs when the event loop starts: one turn of the
    // mock runtime's.
    #[allow(deprecated)]
    app.run_iteration(|_, _| {});
    let window = WebviewWindowBuilder::new(&app, "main", Default::default()).build().unwrap();
    TestApp { app, window, _dir: dir }
}

impl TestApp {
    /// Calls command `cmd` with `args` as the window does; the error is what the window
    /// receives.
    fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let request = tauri::webview::InvokeRequest {
            cmd: cmd.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: tauri::ipc::InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        get_ipc_response(&self.window, request).map(|b| b.deserialize::<Value>().unwrap())
    }

    fn state(&self) -> tauri::State<'_, AppState> {
        self.app.state::<AppState>()
    }
}

/// The gateway cannot listen (the port is taken): the app runs without it and says why.
fn without_gateway(prepare: impl FnOnce(&Home)) -> (TestApp, std::net::TcpListener) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = start(&format!("[gateway]\nlisten = \"{}\"\n", taken.local_addr().unwrap()), prepare);
    (app, taken)
}

#[test]
fn without_a_gateway_status_says_so_and_actions_are_unavailable() {
    let (app, _taken) = without_gateway(|_| {});
    let status = app.call("status", json!({})).unwrap();
    assert_eq!(status["listen"], Value::Null, "{status}");
    let why = status["gateway_error"].as_str().expect("the status says why the gateway does not run");
    assert!(why.contains("another Countersign gateway is running"), "{why}");
    assert_eq!(status["hub"], Value::Null);
    // A command that needs the gateway is refused with a kind the window can read.
    let refused = app.call("revoke_grant", json!({"id": "g1"})).unwrap_err();
    assert_eq!(refused, json!({"kind": "unavailable", "message": "the gateway is not running"}));
    // Views without a gateway are empty, not errors.
    assert_eq!(app.call("servers", json!({})).unwrap(), json!([]));
    assert_eq!(app.call("policy", json!({})).unwrap(), Value::Null);
}

#[test]
fn settings_show_the_hub_enrollment_from_the_data_directory() {
    let (app, _taken) = without_gateway(|home| {
        let link = json!({"url": "https://hub.example.test", "device_id": "dev-42"});
        std::fs::write(home.dir().join("hub.json"), link.to_string()).unwrap();
    });
    let settings = app.call("settings", json!({})).unwrap();
    assert_eq!(settings["hub"], json!({"state": "enrolled", "url": "https://hub.example.test", "device_id": "dev-42"}));
    assert_eq!(settings["configuration"], "(none)");
    assert!(settings["data_directory"].as_str().is_some_and(|d| d.ends_with("/data")), "{settings}");

    let (plain, _taken) = without_gateway(|_| {});
    let settings = plain.call("settings", json!({})).unwrap();
    assert_eq!(settings["hub"], json!({"state": "not-enrolled"}));
}

fn prompt(id: &str) -> Prompt {
    Prompt {
        id: id.into(),
        session: "s".into(),
        client: "laptop".into(),
        client_name: None,
        server: "fs".into(),
        tool: "write_file".into(),
        arguments: json!({"path": "/tmp/a"}),
        args_hash: "h1".into(),
        reason: "writes need approval".into(),
        deadline_ms: 0,
        waiting: 1,
        similar: None,
        route: None,
        asked_by: None,
        plan: None,
    }
}

#[test]
fn an_answer_must_carry_the_prompts_nonce_and_a_length_the_policy_offers() {
    // The user's policy offers approvals for once and an hour only.
    let app = start("[gateway]\nlisten = \"127.0.0.1:0\"\n[policy.grants]\nlengths = [\"once\", \"1h\"]\n", |_| {});
    let status = app.call("status", json!({})).unwrap();
    assert!(status["listen"].is_string(), "the gateway runs: {status}");
    assert_eq!(status["hub"], json!({"state": "not-enrolled"}));

    let answered = app.state().approver.ask(prompt("p1"));
    let pending = app.call("pending", json!({})).unwrap();
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    assert_eq!(pending[0]["id"], "p1");
    let nonce = pending[0]["nonce"].as_str().unwrap().to_string();
    let answer = |nonce: Option<&str>, verdict: &str, length: &str| {
        let mut args = json!({"id": "p1", "argsHash": "h1", "verdict": verdict, "length": length});
        if let Some(nonce) = nonce {
            args["nonce"] = json!(nonce);
        }
        app.call("answer", args)
    };

    // Without the nonce the command does not even run; with a guessed one it is refused.
    let missing = answer(None, "allow", "once").unwrap_err();
    assert!(missing.as_str().is_some_and(|m| m.contains("nonce")), "{missing}");
    let guessed = answer(Some("guess"), "allow", "once").unwrap_err();
    assert_eq!(guessed["kind"], "conflict", "{guessed}");
    assert_eq!(guessed["message"], "the answer does not carry this prompt's nonce");
    // A length that is no length, and one the builtin policy does not offer.
    assert_eq!(answer(Some(&nonce), "allow", "forever").unwrap_err()["kind"], "bad_request");
    assert_eq!(status["grant_lengths"], json!(["once", "1h"]));
    let not_offered = answer(Some(&nonce), "allow", "today").unwrap_err();
    assert_eq!(not_offered["kind"], "forbidden", "{not_offered}");
    // The prompt is still waiting after every refusal; the right nonce answers it.
    assert_eq!(app.state().approver.pending_full().len(), 1);
    assert_eq!(answer(Some(&nonce), "deny", "once"), Ok(Value::Null));
    assert_eq!(tauri::async_runtime::block_on(answered), Answer::Denied);
    let again = answer(Some(&nonce), "deny", "once").unwrap_err();
    assert_eq!(again["kind"], "not_found", "{again}");
}

/// The TypeScript types in `ui/src/lib/bindings/` are the Rust types': regenerated here
/// and compared. `COUNTERSIGN_WRITE_BINDINGS=1 cargo test -p countersign-app bindings`
/// writes them.
#[test]
fn ui_bindings_are_generated_from_the_rust_types() {
    use ts_rs::TS;
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/bindings");
    let write = std::env::var_os("COUNTERSIGN_WRITE_BINDINGS").is_some();
    let fresh = tempfile::tempdir().unwrap();
    let out = if write { committed.clone() } else { fresh.path().to_path_buf() };
    if write {
        let _ = std::fs::remove_dir_all(&committed);
    }
    // JSON numbers: the UI never sees an integer past 2^53 (milliseconds, counts).
    let cfg = ts_rs::Config::new().with_out_dir(&out).with_large_int("number");
    crate::commands::AppStatus::export_all(&cfg).unwrap();
    crate::commands::SettingsView::export_all(&cfg).unwrap();
    crate::clients::ClientsView::export_all(&cfg).unwrap();
    crate::error::CommandError::export_all(&cfg).unwrap();
    crate::approvals::PendingPrompt::export_all(&cfg).unwrap();
    countersign_policy::Grant::export_all(&cfg).unwrap();
    countersign_gateway::api::ActivityFilter::export_all(&cfg).unwrap();
    countersign_gateway::api::ServerView::export_all(&cfg).unwrap();
    countersign_gateway::api::CredentialView::export_all(&cfg).unwrap();
    countersign_gateway::api::PolicyView::export_all(&cfg).unwrap();
    countersign_local::client_routing::FileOutcome::export_all(&cfg).unwrap();
    if write {
        return;
    }
    let files = |dir: &std::path::Path| -> std::collections::BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read_to_string(e.path()).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (want, have) = (files(fresh.path()), files(&committed));
    assert!(want.len() > 10, "ts-rs wrote {} files", want.len());
    for (name, text) in &want {
        assert_eq!(
            have.get(name),
            Some(text),
            "ui/src/lib/bindings/{name} is stale: run COUNTERSIGN_WRITE_BINDINGS=1 cargo test -p countersign-app bindings"
        );
    }
    let extra: Vec<&String> = have.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(extra.is_empty(), "bindings no Rust type makes any more: {extra:?}");
}
