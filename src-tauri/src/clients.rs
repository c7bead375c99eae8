//! The Clients window's commands: each AI client found on this machine with its servers
//! and their state (routed, shadow, blocked), "Route through Countersign" per client,
//! and undo. The work is the gateway's `client_routing`; this only picks the config file,
//! the shim program and the listening address the running gateway uses.

use crate::error::{CmdResult, CommandError, ErrorKind};
use crate::state::AppState;
use countersign_clients::{ClientKind, Env, FileReport};
use countersign_local::client_routing::{self, record::Record, FileOutcome, Options};
use serde::Serialize;
use std::path::PathBuf;
use tauri::{AppHandle, Manager, Runtime};

/// One AI client and its files.
#[derive(Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ClientView {
    client: ClientKind,
    name: &'static str,
    files: Vec<FileReport>,
    /// Servers not yet through Countersign (shadow or blocked), enabled or not.
    shadow: usize,
    /// Entries Countersign routed and can put back.
    undoable: usize,
}

#[derive(Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ClientsView {
    clients: Vec<ClientView>,
    /// Set while policy requires routing and some client does not comply.
    warning: Option<String>,
}

fn env() -> CmdResult<Env> {
    Env::from_process().ok_or_else(|| CommandError::new(ErrorKind::Unavailable, "no home folder (HOME is not set)"))
}

fn kind(slug: &str) -> CmdResult<ClientKind> {
    ClientKind::from_slug(slug)
        .ok_or_else(|| CommandError::new(ErrorKind::BadRequest, format!("unknown client `{slug}`")))
}

/// The `countersign` program stdio-only clients start: beside the app, else on `PATH`.
fn shim_program() -> CmdResult<String> {
    let name = if cfg!(windows) { "countersign.exe" } else { "countersign" };
    let beside = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join(name)));
    let on_path =
        || std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()));
    beside.filter(|p| p.is_file()).or_else(on_path).map(|p: PathBuf| p.display().to_string()).ok_or_else(|| {
        CommandError::new(
            ErrorKind::Unavailable,
            "the `countersign` command is not installed, so stdio clients cannot be routed",
        )
    })
}

#[tauri::command]
pub async fn clients<R: Runtime>(app: AppHandle<R>) -> CmdResult<ClientsView> {
    let state = app.state::<AppState>();
    let gateway = state.running()?;
    let listen = state.listen();
    let env = env()?;
    let policy = gateway.policy();
    let mut reports = tauri::async_runtime::spawn_blocking(move || countersign_clients::inventory(&env, &[], listen))
        .await
        .map_err(CommandError::failed)?;
    countersign_gateway::client_inventory::mark_blocked(&mut reports, &policy);
    let record = Record::load(gateway.home()).map_err(CommandError::failed)?;
    let mut out: Vec<ClientView> = Vec::new();
    for report in reports {
        let client = report.client;
        let shadow = report.servers.iter().filter(|s| s.route != countersign_clients::Route::Routed).count();
        match out.iter_mut().find(|c| c.client == client) {
            Some(view) => {
                view.shadow += shadow;
                view.files.push(report);
            }
            None => out.push(ClientView {
                client,
                name: client.name(),
                files: vec![report],
                shadow,
                undoable: record.entries.iter().filter(|e| e.client == client).count(),
            }),
        }
    }
    let warning = gateway.routing_warning();
    Ok(ClientsView { clients: out, warning })
}

fn config_path(gateway: &countersign_gateway::Gateway) -> CmdResult<PathBuf> {
    gateway
        .config_path()
        .ok_or_else(|| CommandError::new(ErrorKind::Unavailable, "Countersign runs without a config file"))
}

#[tauri::command]
pub async fn route_client<R: Runtime>(app: AppHandle<R>, client: String) -> CmdResult<Vec<FileOutcome>> {
    let state = app.state::<AppState>();
    let gateway = state.running()?;
    let options = Options {
        clients: vec![kind(&client)?],
        projects: Vec::new(),
        program: shim_program()?,
        gateway: state.listen(),
        approved: Vec::new(),
    };
    let policy = gateway.policy();
    let lookup = |var: &str| std::env::var(var).ok();
    let outcome = client_routing::install(gateway.home(), &config_path(&gateway)?, &env()?, &policy, &options, &lookup)
        .await
        .map_err(CommandError::failed)?;
    // The entry the client was just given works on its first connection: the gateway takes
    // up the servers install added now, not when its file watcher next fires (as the CLI's
    // `clients install` asks the running gateway to).
    gateway.reload_policy();
    Ok(outcome)
}

#[tauri::command]
pub async fn undo_client<R: Runtime>(app: AppHandle<R>, client: String) -> CmdResult<Vec<FileOutcome>> {
    let gateway = app.state::<AppState>().running()?;
    let outcome = client_routing::uninstall(gateway.home(), &config_path(&gateway)?, &env()?, &[kind(&client)?])
        .await
        .map_err(CommandError::failed)?;
    gateway.reload_policy();
    Ok(outcome)
}
