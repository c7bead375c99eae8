//! The typed commands the app's windows call: thin adapters over the hosted gateway's
//! [`Gateway`] handle, which implements every control action once for the app and the
//! CLI alike. None holds business logic, and none trusts the window beyond what a person
//! can do: an answer needs the prompt's nonce and argument hash.

use crate::approvals::PendingPrompt;
use crate::error::{CmdResult, CommandError, ErrorKind};
use crate::state::AppState;
use countersign_gateway::api::{ActivityFilter, AnswerRequest, CredentialView, HubEnrollment, PolicyView, ServerView};
use countersign_gateway::approver::Binding;
use countersign_policy::GrantLength;
use serde::Serialize;
use serde_json::Value;
use tauri::{AppHandle, Manager, Runtime, State};

/// The app at a glance: the main window's header and banners.
#[derive(Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AppStatus {
    /// Where the hosted gateway listens; None while it does not run here.
    pub listen: Option<String>,
    /// Why the gateway does not run here (another one serves this user, or it failed).
    pub gateway_error: Option<String>,
    pub paused: bool,
    pub pending: usize,
    pub policy_version: String,
    pub grant_lengths: Vec<GrantLength>,
    /// Credentials written in plain text in the config file (`servers.X.env.KEY`), which
    /// the window offers to move into the keychain.
    pub plaintext_secrets: Vec<String>,
    /// Set while policy requires AI clients to route through Countersign and some do not.
    pub routing_warning: Option<String>,
    /// Set while the managed policy bundle in force has expired.
    pub policy_warning: Option<String>,
    /// Set while the hub has revoked this device (its person deprovisioned): it syncs no
    /// more and local policy stays in force.
    pub hub_warning: Option<String>,
    /// Whether this device is enrolled with a hub (None while the gateway does not run).
    pub hub: Option<HubEnrollment>,
}

#[tauri::command]
pub fn status(state: State<'_, AppState>) -> AppStatus {
    let gateway = state.gateway();
    let status = gateway.as_ref().map(|g| g.status());
    AppStatus {
        listen: state.listen().map(|a| a.to_string()),
        gateway_error: state.gateway_error(),
        paused: status.as_ref().is_some_and(|s| s.paused),
        pending: state.approver.pending_full().len(),
        policy_version: status.as_ref().map(|s| s.policy_version.clone()).unwrap_or_default(),
        grant_lengths: status.as_ref().map(|s| s.grant_lengths.clone()).unwrap_or_default(),
        plaintext_secrets: gateway.as_ref().map(|g| g.plaintext_secrets()).unwrap_or_default(),
        routing_warning: status.as_ref().and_then(|s| s.routing_warning.clone()),
        policy_warning: status.as_ref().and_then(|s| s.policy_warning.clone()),
        hub_warning: status.as_ref().and_then(|s| s.hub_warning.clone()),
        hub: status.map(|s| s.hub),
    }
}

/// Moves every credential written in plain text in the config into the keychain, leaving
/// references; how many moved.
#[tauri::command]
pub async fn import_secrets<R: Runtime>(app: AppHandle<R>) -> CmdResult<usize> {
    let gateway = app.state::<AppState>().running()?;
    Ok(gateway.import_secrets().await?)
}

#[tauri::command]
pub fn pending(state: State<'_, AppState>) -> Vec<PendingPrompt> {
    let mut all = state.approver.pending_full();
    // Calls whose approval policy routed to someone else wait at the hub: shown as
    // waiting for them, with no nonce (they can only be withdrawn here).
    if let Some(gateway) = state.gateway() {
        all.extend(gateway.pending().into_iter().filter(|p| p.route.is_some()).map(|prompt| {
            let (summary, truncated) = crate::approvals::summarize(&prompt.arguments, 120);
            PendingPrompt { prompt, nonce: String::new(), summary, truncated }
        }));
    }
    all
}

#[tauri::command]
#[allow(clippy::too_many_arguments)]
pub fn answer(
    state: State<'_, AppState>,
    id: String,
    nonce: String,
    args_hash: String,
    verdict: String,
    length: Option<String>,
    all: Option<usize>,
    similar: Option<bool>,
) -> CmdResult<()> {
    let binding = Binding { nonce, args_hash };
    let request = AnswerRequest::parse(&verdict, length.as_deref(), None, all, Some(binding))?;
    let request = request.with_similar(similar.unwrap_or(false));
    Ok(state.running()?.answer(&id, request)?)
}

#[tauri::command]
pub fn grants(state: State<'_, AppState>) -> Vec<countersign_policy::Grant> {
    state.gateway().map(|g| g.grants()).unwrap_or_default()
}

#[tauri::command]
pub fn revoke_grant(state: State<'_, AppState>, id: String) -> CmdResult<()> {
    Ok(state.running()?.revoke_grant(&id)?)
}

/// The newest records first (at most 500), filtered by the journal's own query. Records
/// stay JSON objects: the journal's wire format (`countersign-audit`) is their type, and
/// the window shows each field it does not know as it is.
#[tauri::command]
pub async fn activity<R: Runtime>(app: AppHandle<R>, filter: Option<ActivityFilter>) -> CmdResult<Vec<Value>> {
    let gateway = app.state::<AppState>().running()?;
    Ok(off_thread(app, move |_| tauri::async_runtime::block_on(gateway.activity(filter.unwrap_or_default()))).await??)
}

#[tauri::command]
pub fn servers(state: State<'_, AppState>) -> Vec<ServerView> {
    state.gateway().map(|g| g.servers()).unwrap_or_default()
}

/// Each remote server's credentials: signed in (until when, by which authorization
/// server), needing a sign-in, or a keychain problem. Never a token.
#[tauri::command]
pub async fn credentials<R: Runtime>(app: AppHandle<R>) -> Vec<CredentialView> {
    match app.state::<AppState>().gateway() {
        Some(gateway) => gateway.credentials().await,
        None => Vec::new(),
    }
}

/// Signs in to a remote server: the browser opens (through the OS, never a shell) and the
/// sign-in comes back to a loopback listener; the tokens go to the keychain.
#[tauri::command]
pub async fn sign_in<R: Runtime>(app: AppHandle<R>, server: String) -> CmdResult<String> {
    let gateway = app.state::<AppState>().running()?;
    Ok(gateway.sign_in(&server).await?)
}

/// Signs out of a remote server: its tokens are revoked and removed from the keychain.
#[tauri::command]
pub async fn sign_out<R: Runtime>(app: AppHandle<R>, server: String) -> CmdResult<usize> {
    let gateway = app.state::<AppState>().running()?;
    Ok(gateway.sign_out(&server).await?)
}

#[tauri::command]
pub fn accept_tools(state: State<'_, AppState>, server: String, tools: Vec<String>) -> CmdResult<usize> {
    Ok(state.running()?.accept_pins(&server, &tools)?)
}

#[tauri::command]
pub fn policy(state: State<'_, AppState>) -> Option<PolicyView> {
    state.gateway().map(|g| g.policy_view())
}

/// What the settings window shows.
#[derive(Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SettingsView {
    pub data_directory: std::path::PathBuf,
    /// The config file, or `(none)`.
    pub configuration: String,
    pub managed_policy: std::path::PathBuf,
    /// The hub this device is enrolled with, read from the data directory.
    pub hub: HubEnrollment,
    pub start_at_login: bool,
    /// Set when managed policy decides start at login.
    pub start_at_login_forced: Option<bool>,
}

#[tauri::command]
pub fn settings(state: State<'_, AppState>) -> SettingsView {
    let gateway = state.gateway();
    SettingsView {
        data_directory: state.home.dir().to_path_buf(),
        configuration: state.config.path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(none)".into()),
        managed_policy: countersign_gateway::policy_layers::managed_file(),
        hub: countersign_gateway::api::hub_enrollment(&state.home),
        start_at_login: crate::autostart::enabled(),
        start_at_login_forced: gateway.and_then(|g| g.policy().layers().managed_settings().start_at_login),
    }
}

#[tauri::command]
pub fn set_paused<R: Runtime>(app: AppHandle<R>, state: State<'_, AppState>, paused: bool) -> CmdResult<()> {
    crate::tray::set_paused(&app, &state.running()?, paused);
    Ok(())
}

/// Runs `work` on a blocking thread that drives it to completion: the journal's and the
/// gateway's futures are not `Send` in the way a command's future must be.
async fn off_thread<R: Runtime, T: Send + 'static>(
    app: AppHandle<R>,
    work: impl FnOnce(AppHandle<R>) -> T + Send + 'static,
) -> CmdResult<T> {
    tauri::async_runtime::spawn_blocking(move || work(app)).await.map_err(CommandError::failed)
}

#[tauri::command]
pub async fn take_over<R: Runtime>(app: AppHandle<R>) -> CmdResult<()> {
    off_thread(app, |app| {
        let state = app.state::<AppState>();
        tauri::async_runtime::block_on(crate::state::take_over(&app, &state)).map_err(CommandError::failed)
    })
    .await?
}

/// Closes the main window (and its web view); Countersign keeps running in the tray and
/// opens it again when a prompt or the tray asks.
#[tauri::command]
pub fn close_main<R: Runtime>(app: AppHandle<R>) -> CmdResult<()> {
    let window = app.get_webview_window("main").ok_or_else(|| CommandError::failed("no main window"))?;
    window.destroy().map_err(CommandError::failed)
}

/// Turns start at login on or off, unless managed policy decides it.
#[tauri::command]
pub fn set_start_at_login(state: State<'_, AppState>, on: bool) -> CmdResult<()> {
    let forced = state.gateway().and_then(|g| g.policy().layers().managed_settings().start_at_login);
    if let Some(forced) = forced {
        return Err(CommandError::new(
            ErrorKind::Forbidden,
            format!("managed policy sets start at login to {}", if forced { "on" } else { "off" }),
        ));
    }
    crate::autostart::set(on).map_err(CommandError::failed)
}

/// Makes a tool stricter in the user's own policy, or removes that override; a class
/// managed policy sets cannot be changed here.
#[tauri::command]
pub fn set_tool_class(
    state: State<'_, AppState>,
    server: String,
    tool: String,
    class: Option<String>,
) -> CmdResult<()> {
    Ok(state.running()?.set_tool_class(&server, &tool, class.as_deref())?)
}
