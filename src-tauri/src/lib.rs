//! The Countersign desktop app: hosts the gateway (one per user), raises a native
//! notification for every call that needs approval, and gives people the windows to see
//! and manage what their AI assistants do. The UI talks to this side only through the
//! typed commands in `commands.rs` and `clients.rs` (their types are generated into
//! `ui/src/lib/bindings/`) and the `approvals-changed` / `activity-changed` events.
//!
//! [`app`] assembles the app on any Tauri runtime, so tests drive it with the mock
//! runtime; [`run_app`] builds it on the desktop's and runs it. Neither decides a call:
//! every control action goes through the hosted gateway's `Gateway` handle.

mod approvals;
mod autostart;
mod clients;
mod commands;
mod error;
mod notifier;
mod state;
mod tray;
mod windows;

#[cfg(test)]
mod tests;

pub use error::{CmdResult, CommandError, ErrorKind};

use approvals::{ApprovalEvent, DesktopApprover};
use countersign_gateway::{Config, Home};
use state::AppState;
use tauri::{AppHandle, Builder, Emitter, Manager, Runtime};

/// What the app runs with.
pub struct Launch {
    pub home: Home,
    pub config: Config,
    /// The tray icon, desktop notifications and the start at login managed policy forces;
    /// off where there is no desktop session (tests on the mock runtime).
    pub desktop: bool,
}

/// The app on `builder`'s runtime: its state, its commands, and its set-up (the gateway
/// starts, or the reason it cannot is kept for the window; with `desktop`, the tray and
/// notifications come up).
pub fn app<R: Runtime>(builder: Builder<R>, launch: Launch) -> Builder<R> {
    let Launch { home, config, desktop } = launch;
    let (approver, events) = DesktopApprover::new();
    builder
        .manage(AppState::new(approver, home, config))
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::pending,
            commands::answer,
            commands::grants,
            commands::revoke_grant,
            commands::activity,
            commands::servers,
            commands::accept_tools,
            commands::policy,
            commands::settings,
            commands::set_paused,
            commands::take_over,
            commands::close_main,
            commands::set_start_at_login,
            commands::set_tool_class,
            commands::credentials,
            commands::sign_in,
            commands::sign_out,
            commands::import_secrets,
            clients::clients,
            clients::route_client,
            clients::undo_client,
        ])
        .setup(move |app| {
            let handle = app.handle().clone();
            if desktop {
                if let Err(e) = tray::build(&handle) {
                    tracing::warn!("no tray icon on this desktop: {e}");
                }
            }
            tauri::async_runtime::block_on(async {
                handle.state::<AppState>().start_gateway(&handle).await;
            });
            if desktop {
                force_start_at_login(&handle);
            }
            tauri::async_runtime::spawn(relay_approvals(handle.clone(), events, desktop));
            if desktop {
                tray::refresh(&handle);
                tauri::async_runtime::spawn(tray::follow(handle.clone()));
            }
            Ok(())
        })
        .on_window_event(|window, event| {
            // A closed window is destroyed with its web view, so an idle Countersign holds
            // no web content; the tray, a notification or a prompt opens it again.
            if let tauri::WindowEvent::Destroyed = event {
                tracing::info!(window = window.label(), "window closed; Countersign keeps running");
            }
        })
}

/// Builds the app on the desktop's runtime and runs it. Closing the last window leaves
/// Countersign running (the gateway must keep answering); only Quit, or a signal, ends it.
pub fn run_app(builder: Builder<tauri::Wry>, launch: Launch) -> tauri::Result<()> {
    let app = app(builder, launch).build(tauri::generate_context!())?;
    app.run(|_, event| {
        if let tauri::RunEvent::ExitRequested { api, code: None, .. } = event {
            api.prevent_exit();
        }
    });
    Ok(())
}

/// Managed policy may force start at login.
fn force_start_at_login<R: Runtime>(app: &AppHandle<R>) {
    let forced = app.state::<AppState>().gateway().and_then(|g| g.policy().layers().managed_settings().start_at_login);
    if let Some(forced) = forced {
        if forced != autostart::enabled() {
            if let Err(e) = autostart::set(forced) {
                tracing::error!("start at login, as managed policy asks: {e}");
            }
        }
    }
}

/// Carries approvals to the notification server (with `desktop`), the tray and the
/// windows.
async fn relay_approvals<R: Runtime>(
    app: AppHandle<R>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<ApprovalEvent>,
    desktop: bool,
) {
    let notifier = if desktop { start_notifier(&app).await } else { None };
    while let Some(event) = events.recv().await {
        match event {
            ApprovalEvent::Raised(p, raised) => {
                let lengths = app
                    .state::<AppState>()
                    .gateway()
                    .map(|g| g.policy().grant_settings().0.lengths.clone())
                    .unwrap_or_default();
                let posted = match &notifier {
                    Some(n) => n.post(&p, &lengths).await.map_err(|e| e.to_string()),
                    None => Err("no notification server".to_string()),
                };
                match posted {
                    Ok(nid) => tracing::info!(
                        prompt = %p.prompt.id,
                        notification = nid,
                        latency_ms = raised.elapsed().as_secs_f64() * 1000.0,
                        "prompt posted as a notification"
                    ),
                    Err(e) => {
                        // Where the desktop cannot show it, a window asks instead.
                        tracing::warn!(prompt = %p.prompt.id, "notification not shown ({e}); opening a window");
                        windows::open_prompt(&app, &p.prompt.id);
                    }
                }
            }
            ApprovalEvent::Settled { id } => {
                if let Some(n) = &notifier {
                    n.withdraw(&id).await;
                }
                let _ = app.emit("activity-changed", ());
            }
        }
        if desktop {
            tray::refresh(&app);
        }
        let _ = app.emit("approvals-changed", ());
    }
}

/// The notification server's listener, whose actions answer through the gateway.
async fn start_notifier<R: Runtime>(app: &AppHandle<R>) -> Option<std::sync::Arc<notifier::Notifier>> {
    let approver = app.state::<AppState>().approver.clone();
    let opener = app.clone();
    let answerer = app.clone();
    let answer_with: notifier::AnswerFn =
        std::sync::Arc::new(move |id, request| answerer.state::<AppState>().running()?.answer(id, request));
    match notifier::Notifier::start(approver, answer_with, move |prompt| windows::open_prompt(&opener, &prompt)).await {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::error!("no desktop notifications ({e}); prompts open a window instead");
            None
        }
    }
}
