//! The Countersign desktop app: hosts the gateway (one per user), raises a native
//! notification for every call that needs approval, and gives people the windows to see
//! and manage what their AI assistants do. The UI talks to this side only through the
//! typed commands in `commands.rs` and the `approvals-changed` / `activity-changed`
//! events. Configuration: `COUNTERSIGN_CONFIG` or `config.toml` in the data directory.

mod approvals;
mod autostart;
mod clients;
mod commands;
mod notifier;
mod state;
mod tray;

use approvals::{ApprovalEvent, DesktopApprover};
use countersign_local::{Config, Home};
use state::AppState;
use tauri::{Emitter, Manager, WebviewUrl, WebviewWindowBuilder};

/// Shows the main window on a tab, creating it again if it was closed.
pub fn show_main(app: &tauri::AppHandle, tab: &str) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.eval(format!("location.hash = {:?}", tab));
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    let built = WebviewWindowBuilder::new(app, "main", WebviewUrl::App(format!("index.html#{tab}").into()))
        .title("Countersign")
        .inner_size(1000.0, 700.0)
        .build();
    if let Err(e) = built {
        tracing::error!("cannot open the Countersign window: {e}");
    }
}

/// A small always-on-top window with one prompt's full arguments and its buttons.
fn open_prompt_window(app: &tauri::AppHandle, prompt: &str) {
    let label = format!("approval-{}", &prompt[..prompt.len().min(24)]);
    if let Some(w) = app.get_webview_window(&label) {
        let _ = w.set_focus();
        return;
    }
    let built = WebviewWindowBuilder::new(app, label, WebviewUrl::App("index.html#approvals".into()))
        .title("Countersign: approval needed")
        .inner_size(560.0, 520.0)
        .always_on_top(true)
        .build();
    if let Err(e) = built {
        tracing::error!("cannot open the approval window: {e}");
    }
}

fn config(home: &Home) -> anyhow::Result<Config> {
    match std::env::var_os("COUNTERSIGN_CONFIG").map(std::path::PathBuf::from) {
        Some(p) => Ok(Config::load(&p)?),
        None => Ok(Config::load_or_empty(&home.dir().join("config.toml"))?),
    }
}

/// Carries approvals to the notification server, the tray and the windows.
async fn relay_approvals(app: tauri::AppHandle, mut events: tokio::sync::mpsc::UnboundedReceiver<ApprovalEvent>) {
    let approver = app.state::<AppState>().approver.clone();
    let opener = app.clone();
    let answerer = app.clone();
    let answer_with: notifier::AnswerFn = std::sync::Arc::new(move |id, request| {
        let gateway = answerer.state::<AppState>().gateway();
        let gateway = gateway
            .ok_or_else(|| countersign_gateway::api::ControlError::Unavailable("the gateway is not running".into()))?;
        gateway.answer(id, request)
    });
    let notifier = match notifier::Notifier::start(approver, answer_with, move |prompt| {
        open_prompt_window(&opener, &prompt)
    })
    .await
    {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::error!("no desktop notifications ({e}); prompts open a window instead");
            None
        }
    };
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
                        open_prompt_window(&app, &p.prompt.id);
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
        tray::refresh(&app);
        let _ = app.emit("approvals-changed", ());
    }
}

fn main() {
    let filter = std::env::var("COUNTERSIGN_LOG").unwrap_or_else(|_| "info".into());
    let mut filter = tracing_subscriber::EnvFilter::new(filter);
    for directive in countersign_vault::LOG_GUARDS {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let home = match Home::resolve() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("countersign-app: data directory: {e}");
            std::process::exit(1);
        }
    };
    let config = match config(&home) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("countersign-app: {e}");
            std::process::exit(1);
        }
    };
    let (approver, events) = DesktopApprover::new();
    let result = tauri::Builder::default()
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
            if let Err(e) = tray::build(&handle) {
                tracing::warn!("no tray icon on this desktop: {e}");
            }
            tauri::async_runtime::block_on(async {
                handle.state::<AppState>().start_gateway(&handle).await;
            });
            // Managed policy may force start at login.
            if let Some(forced) =
                handle.state::<AppState>().gateway().and_then(|g| g.policy().layers().managed_settings().start_at_login)
            {
                if forced != autostart::enabled() {
                    if let Err(e) = autostart::set(forced) {
                        tracing::error!("start at login, as managed policy asks: {e}");
                    }
                }
            }
            tauri::async_runtime::spawn(relay_approvals(handle.clone(), events));
            tray::refresh(&handle);
            tauri::async_runtime::spawn(tray::follow(handle.clone()));
            Ok(())
        })
        .on_window_event(|window, event| {
            // A closed window is destroyed with its web view, so an idle Countersign holds
            // no web content; the tray, a notification or a prompt opens it again.
            if let tauri::WindowEvent::Destroyed = event {
                tracing::info!(window = window.label(), "window closed; Countersign keeps running");
            }
        })
        .build(tauri::generate_context!());
    match result {
        // Closing the last window leaves Countersign running (the gateway must keep
        // answering); only Quit, or a signal, ends it.
        Ok(app) => app.run(|_, event| {
            if let tauri::RunEvent::ExitRequested { api, code: None, .. } = event {
                api.prevent_exit();
            }
        }),
        Err(e) => {
            eprintln!("countersign-app: {e}");
            std::process::exit(1);
        }
    }
}
