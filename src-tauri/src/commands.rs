//! The typed commands the app's windows call. Each one reads or changes the gateway's own
//! state (approvals, grants, pins, the journal, the kill switch); none holds business
//! logic the Rust side does not already own, and none trusts the window beyond what a
//! person can do: an answer needs the prompt's nonce and argument hash.

use crate::approvals::PendingPrompt;
use crate::state::AppState;
use countersign_gateway::approver::Answer;
use countersign_policy::{GrantLength, ToolDef, ToolState};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use tauri::{Manager, State};

type CmdResult<T> = Result<T, String>;

#[derive(Serialize)]
pub struct AppStatus {
    listen: Option<String>,
    gateway_error: Option<String>,
    paused: bool,
    pending: usize,
    policy_version: String,
    grant_lengths: Vec<GrantLength>,
    /// Credentials written in plain text in the config file (`servers.X.env.KEY`), which
    /// the window offers to move into the keychain.
    plaintext_secrets: Vec<String>,
    /// Set while policy requires AI clients to route through Countersign and some do not.
    routing_warning: Option<String>,
    /// Set while the managed policy bundle in force has expired.
    policy_warning: Option<String>,
}

#[tauri::command]
pub fn status(state: State<'_, AppState>) -> AppStatus {
    let shared = state.shared();
    AppStatus {
        listen: state.listen().map(|a| a.to_string()),
        gateway_error: state.gateway_error(),
        paused: shared.as_ref().is_some_and(|s| s.paused.load(Ordering::SeqCst)),
        pending: state.approver.pending_full().len(),
        policy_version: shared.as_ref().map(|s| s.policy.load().version().to_string()).unwrap_or_default(),
        grant_lengths: shared.as_ref().map(|s| s.policy.load().grant_settings().0.lengths.clone()).unwrap_or_default(),
        plaintext_secrets: shared
            .as_ref()
            .and_then(|s| s.config.path.clone())
            .and_then(|p| countersign_gateway::secret_import::find(&p).ok())
            .map(|found| found.iter().map(|f| f.field()).collect())
            .unwrap_or_default(),
        routing_warning: shared.as_ref().and_then(|s| s.routing_warning.lock().ok().and_then(|w| w.clone())),
        policy_warning: shared.as_ref().and_then(|s| s.bundles.warning()),
    }
}

/// Moves every credential written in plain text in the config into the keychain, leaving
/// references; how many moved.
#[tauri::command]
pub async fn import_secrets(app: tauri::AppHandle) -> CmdResult<usize> {
    let shared = app.state::<AppState>().shared().ok_or("the gateway is not running")?;
    let path = shared.config.path.clone().ok_or("Countersign runs without a config file")?;
    let moved = countersign_gateway::secret_import::import(&path, |_| true).await.map_err(|e| e.to_string())?;
    Ok(moved.len())
}

#[tauri::command]
pub fn pending(state: State<'_, AppState>) -> Vec<PendingPrompt> {
    state.approver.pending_full()
}

#[tauri::command]
pub fn answer(
    state: State<'_, AppState>,
    id: String,
    nonce: String,
    args_hash: String,
    verdict: String,
    length: Option<String>,
    all: Option<usize>,
) -> CmdResult<()> {
    let answer = match verdict.as_str() {
        "deny" => Answer::Denied,
        "allow" => {
            let length = match length.as_deref() {
                None => GrantLength::Once,
                Some(l) => GrantLength::parse(l).ok_or_else(|| format!("`{l}` is not a grant length"))?,
            };
            if let Some(shared) = state.shared() {
                let policy = shared.policy.load();
                if !policy.grant_settings().0.lengths.contains(&length) {
                    return Err(format!("policy does not allow approvals for {}", length.as_str()));
                }
            }
            Answer::Approved { length, condition: None, count: all.unwrap_or(1).max(1) }
        }
        other => return Err(format!("`{other}` is not allow or deny")),
    };
    state.approver.answer_verified(&id, &nonce, &args_hash, answer).map_err(|e| e.to_string())
}

#[tauri::command]
pub fn grants(state: State<'_, AppState>) -> Vec<countersign_policy::Grant> {
    state
        .shared()
        .map(|s| s.grants.lock().map(|mut g| g.list(countersign_gateway::clock::now_ms())).unwrap_or_default())
        .unwrap_or_default()
}

#[tauri::command]
pub fn revoke_grant(state: State<'_, AppState>, id: String) -> CmdResult<()> {
    let shared = state.shared().ok_or("the gateway is not running")?;
    let revoked = shared.grants.lock().map_err(|_| "grants unavailable")?.revoke(&id);
    revoked.then_some(()).ok_or_else(|| format!("no grant `{id}`"))
}

#[derive(Deserialize, Default)]
pub struct ActivityFilter {
    client: Option<String>,
    server: Option<String>,
    tool: Option<String>,
    decision: Option<String>,
}

/// The newest records first (at most 500), filtered by the journal's own query.
#[tauri::command]
pub async fn activity(app: tauri::AppHandle, filter: Option<ActivityFilter>) -> CmdResult<Vec<Value>> {
    let shared = app.state::<AppState>().shared().ok_or("the gateway is not running")?;
    let reader = shared.journal.reader();
    let f = filter.unwrap_or_default();
    let filters: Vec<(&'static str, String)> =
        [("client", f.client), ("server", f.server), ("tool", f.tool), ("decision", f.decision)]
            .into_iter()
            .filter_map(|(column, value)| value.filter(|v| !v.is_empty()).map(|v| (column, v)))
            .collect();
    off_thread(app, move |_| {
        let filters: Vec<(&str, &str)> = filters.iter().map(|(c, v)| (*c, v.as_str())).collect();
        tauri::async_runtime::block_on(reader.recent(500, &filters))
    })
    .await?
    .map_err(|e| e.to_string())
}

#[derive(Serialize)]
pub struct ToolView {
    name: String,
    class: String,
    source: String,
    reason: String,
    label: Option<String>,
    state: String,
    detail: Vec<String>,
    /// Set when managed policy decides this tool's class: the user cannot change it.
    locked: Option<String>,
    /// The user's own override, if any.
    user_class: Option<String>,
}

#[derive(Serialize)]
pub struct ServerView {
    name: String,
    transport: String,
    trusted: bool,
    catalog: Option<String>,
    tools: Vec<ToolView>,
}

#[tauri::command]
pub fn servers(state: State<'_, AppState>) -> Vec<ServerView> {
    let Some(shared) = state.shared() else { return Vec::new() };
    let policy = shared.policy.load();
    let user = &policy.layers().user.classify;
    let pins = shared.pins.lock().unwrap_or_else(|p| p.into_inner());
    shared
        .config
        .servers
        .iter()
        .map(|(name, s)| {
            let info = &s.info;
            let tools = pins
                .listing(name)
                .into_iter()
                .filter_map(|(json, review)| {
                    let def = ToolDef::from_json(&json)?;
                    let c = policy.classify(info, &def.name, Some(&def));
                    let (state, detail) = match review {
                        Some(ToolState::Changed { diff }) => ("changed", diff),
                        Some(ToolState::Quarantined { why }) => ("quarantined", why),
                        _ => ("pinned", Vec::new()),
                    };
                    let exact = format!("mcp__{name}__{}", def.name);
                    let locked = (c.source == countersign_policy::ClassSource::Managed).then(|| c.reason.clone());
                    let user_class = user.get(&exact).map(|o| o.class().to_string());
                    Some(ToolView {
                        locked,
                        user_class,
                        name: def.name,
                        class: c.class.to_string(),
                        source: c.source.as_str().to_string(),
                        reason: c.reason,
                        label: c.label,
                        state: state.to_string(),
                        detail,
                    })
                })
                .collect();
            let transport = match s.transport {
                countersign_gateway::config::Transport::Stdio { .. } => "stdio",
                countersign_gateway::config::Transport::Http { .. } => "http",
            };
            ServerView {
                name: name.clone(),
                transport: transport.into(),
                trusted: s.trusted(),
                catalog: s.info.catalog.clone(),
                tools,
            }
        })
        .collect()
}

#[derive(Serialize)]
pub struct CredentialView {
    server: String,
    url: String,
    #[serde(flatten)]
    state: countersign_vault::oauth::CredentialState,
    /// Without a stored sign-in: whether the server asks for one (it answered 401).
    asks_for_sign_in: bool,
}

/// Each remote server's credentials: signed in (until when, by which authorization
/// server), needing a sign-in, or a keychain problem. Never a token.
#[tauri::command]
pub async fn credentials(app: tauri::AppHandle) -> Vec<CredentialView> {
    let Some(shared) = app.state::<AppState>().shared() else { return Vec::new() };
    let mut out = Vec::new();
    for (name, s) in shared.servers().iter() {
        let countersign_gateway::config::Transport::Http { url, .. } = &s.transport else { continue };
        let state = countersign_vault::oauth::ServerAuth::new(name, url).state().await;
        let asks_for_sign_in = matches!(state, countersign_vault::oauth::CredentialState::None)
            && countersign_vault::oauth::login::asks_for_sign_in(url).await;
        out.push(CredentialView { server: name.clone(), url: url.clone(), state, asks_for_sign_in });
    }
    out
}

/// Signs in to a remote server: the browser opens (through the OS, never a shell) and the
/// sign-in comes back to a loopback listener; the tokens go to the keychain.
#[tauri::command]
pub async fn sign_in(app: tauri::AppHandle, server: String) -> CmdResult<String> {
    let shared = app.state::<AppState>().shared().ok_or("the gateway is not running")?;
    let Some(countersign_gateway::config::Transport::Http { url, oauth, .. }) =
        shared.servers().get(&server).map(|s| s.transport.clone())
    else {
        return Err(format!("`{server}` is not a remote server"));
    };
    let request = countersign_vault::oauth::SignInRequest {
        server: server.clone(),
        url,
        scopes: oauth.scopes,
        client_id: oauth.client_id,
        deadline: None,
    };
    let keychain = countersign_vault::Keychain::open().await.map_err(|e| e.to_string())?;
    let (tx, rx) = tokio::sync::oneshot::channel::<url::Url>();
    let flow = countersign_vault::oauth::sign_in(&request, keychain, move |u| {
        let _ = tx.send(u.clone());
        Ok(())
    });
    let opener = async move {
        match rx.await {
            Ok(u) => countersign_vault::oauth::browser::open(&u).await,
            Err(_) => Ok(()),
        }
    };
    let (done, opened) = tokio::join!(flow, opener);
    opened.map_err(|e| format!("cannot open the browser: {e}"))?;
    let done = done.map_err(|e| e.to_string())?;
    shared.policy_event(countersign_gateway::shared::PolicyEvent {
        decision: countersign_audit::Decision::Allow,
        rule: "sign-in",
        reason: format!("signed in{}", done.issuer.map(|i| format!(" with {i}")).unwrap_or_default()),
        server: Some(server.clone()),
        tool: None,
    });
    Ok(format!("Signed in to {server}"))
}

/// Signs out of a remote server: its tokens are revoked and removed from the keychain.
#[tauri::command]
pub async fn sign_out(app: tauri::AppHandle, server: String) -> CmdResult<usize> {
    let shared = app.state::<AppState>().shared().ok_or("the gateway is not running")?;
    let keychain = countersign_vault::Keychain::open().await.map_err(|e| e.to_string())?;
    let out = countersign_vault::oauth::sign_out(&server, keychain).await.map_err(|e| e.to_string())?;
    shared.policy_event(countersign_gateway::shared::PolicyEvent {
        decision: countersign_audit::Decision::Allow,
        rule: "sign-out",
        reason: format!("signed out, {} token(s) revoked", out.revoked),
        server: Some(server),
        tool: None,
    });
    Ok(out.revoked)
}

#[tauri::command]
pub fn accept_tools(state: State<'_, AppState>, server: String, tools: Vec<String>) -> CmdResult<usize> {
    let shared = state.shared().ok_or("the gateway is not running")?;
    let n = shared.pins.lock().map_err(|_| "pins unavailable")?.accept(&server, &tools)?;
    shared.policy_event(countersign_gateway::shared::PolicyEvent {
        decision: countersign_audit::Decision::Allow,
        rule: "pins-accepted",
        reason: format!("accepted {} in the app", tools.join(", ")),
        server: Some(server),
        tool: (tools.len() == 1).then(|| tools[0].clone()),
    });
    Ok(n)
}

#[tauri::command]
pub fn policy(state: State<'_, AppState>) -> Value {
    let Some(shared) = state.shared() else { return Value::Null };
    let policy = shared.policy.load();
    let layers = policy.layers();
    let (grants, grants_layer) = policy.grant_settings();
    json!({
        "policy_version": policy.version(),
        "layers": {
            "bundle": layers.bundle.as_ref().map(|(p, v)| json!({"version": v, "policy": p})),
            "managed": layers.managed.as_ref().map(|m| json!({"policy": m.policy, "managed": m.managed})),
            "user": {"policy": layers.user},
        },
        "grants": {"layer": grants_layer, "settings": grants},
    })
}

#[tauri::command]
pub fn settings(state: State<'_, AppState>) -> Value {
    json!({
        "data_directory": state.home.dir(),
        "configuration": state.config.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(none)".into()),
        "managed_policy": countersign_gateway::policy_layers::managed_file(),
        "hub_enrollment": "not enrolled",
        "start_at_login": crate::autostart::enabled(),
        "start_at_login_forced": state.shared().and_then(|s| s.policy.load().layers().managed_settings().start_at_login),
    })
}

#[tauri::command]
pub fn set_paused(app: tauri::AppHandle, state: State<'_, AppState>, paused: bool) -> CmdResult<()> {
    let shared = state.shared().ok_or("the gateway is not running")?;
    crate::state::set_paused(&app, &shared, paused);
    Ok(())
}

/// Runs `work` on a blocking thread that drives it to completion: the journal's and the
/// gateway's futures are not `Send` in the way a command's future must be.
async fn off_thread<T: Send + 'static>(
    app: tauri::AppHandle,
    work: impl FnOnce(tauri::AppHandle) -> T + Send + 'static,
) -> CmdResult<T> {
    tauri::async_runtime::spawn_blocking(move || work(app)).await.map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn take_over(app: tauri::AppHandle) -> CmdResult<()> {
    off_thread(app, |app| {
        let state = app.state::<AppState>();
        tauri::async_runtime::block_on(crate::state::take_over(&app, &state)).map_err(|e| e.to_string())
    })
    .await?
}

/// Closes the main window (and its web view); Countersign keeps running in the tray and
/// opens it again when a prompt or the tray asks.
#[tauri::command]
pub fn close_main(app: tauri::AppHandle) -> CmdResult<()> {
    let window = app.get_webview_window("main").ok_or("no main window")?;
    window.destroy().map_err(|e| e.to_string())
}

/// Turns start at login on or off, unless managed policy decides it.
#[tauri::command]
pub fn set_start_at_login(state: State<'_, AppState>, on: bool) -> CmdResult<()> {
    let forced = state.shared().and_then(|s| s.policy.load().layers().managed_settings().start_at_login);
    if let Some(forced) = forced {
        return Err(format!("managed policy sets start at login to {}", if forced { "on" } else { "off" }));
    }
    crate::autostart::set(on).map_err(|e| e.to_string())
}

/// Makes a tool stricter in the user's own policy (`[policy.classify]` in their config
/// file), or removes that override; the engine never lets it loosen anything, and a
/// class that managed policy sets cannot be changed here.
#[tauri::command]
pub fn set_tool_class(
    state: State<'_, AppState>,
    server: String,
    tool: String,
    class: Option<String>,
) -> CmdResult<()> {
    let shared = state.shared().ok_or("the gateway is not running")?;
    let path =
        shared.config.path.clone().ok_or("Countersign runs without a config file, so there is nowhere to keep this")?;
    let class = class
        .map(|c| countersign_policy::ToolClass::parse(&c).ok_or_else(|| format!("`{c}` is not a class")))
        .transpose()?;
    let info = shared.servers().get(&server).map(|s| s.info.clone()).ok_or_else(|| format!("no server `{server}`"))?;
    if shared.policy.load().classify(&info, &tool, None).source == countersign_policy::ClassSource::Managed {
        return Err("IT's managed policy sets this tool's class".into());
    }
    countersign_gateway::config_edit::set_class_override(&path, &format!("mcp__{server}__{tool}"), class)
        .map_err(|e| e.to_string())?;
    countersign_gateway::policy_watch::reload(&shared);
    Ok(())
}
