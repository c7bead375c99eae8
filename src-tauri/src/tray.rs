//! The tray icon: its state (idle, pending approvals, paused, error, AI clients bypassing
//! Countersign when policy requires routing) and its menu (pending approvals, activity,
//! AI clients, pause all AI tool access, open Countersign, quit). Where the
//! desktop has no tray (a bare X server), the app still runs: its window and
//! notifications do the work, and the failure is logged once.

use crate::state::AppState;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager, Runtime};

const IDLE: &[u8] = include_bytes!("../icons/tray.png");
const PENDING: &[u8] = include_bytes!("../icons/tray-pending.png");

pub struct TrayItems<R: Runtime> {
    pending: MenuItem<R>,
    pause: CheckMenuItem<R>,
    clients: MenuItem<R>,
}

/// How often the tray looks at what the gateway's background checks found (the AI
/// clients' routing); approvals update it as they happen.
const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

pub fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let pending = MenuItem::with_id(app, "pending", "No pending approvals", true, None::<&str>)?;
    let activity = MenuItem::with_id(app, "activity", "Recent activity", true, None::<&str>)?;
    let clients = MenuItem::with_id(app, "clients", "AI clients", true, None::<&str>)?;
    let pause = CheckMenuItem::with_id(app, "pause", "Pause all AI tool access", true, false, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open Countersign", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&pending, &activity, &clients, &pause, &separator, &open, &quit])?;
    TrayIconBuilder::with_id("main")
        .icon(Image::from_bytes(IDLE)?)
        .tooltip("Countersign")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "pending" | "open" => crate::windows::show_main(app, "approvals"),
            "activity" => crate::windows::show_main(app, "activity"),
            "clients" => crate::windows::show_main(app, "clients"),
            "pause" => {
                if let Some(gateway) = app.state::<AppState>().gateway() {
                    set_paused(app, &gateway, !gateway.paused());
                }
            }
            "quit" => app.exit(0),
            _ => {}
        })
        .build(app)?;
    app.manage(TrayItems { pending, pause, clients });
    Ok(())
}

/// Brings the tray up to date with the approvals and the kill switch.
pub fn refresh<R: Runtime>(app: &AppHandle<R>) {
    let state = app.state::<AppState>();
    let count = state.approver.pending_full().len();
    let gateway = state.gateway();
    let paused = gateway.as_ref().is_some_and(|g| g.paused());
    let error = state.gateway_error().is_some();
    let bypassed = gateway.as_ref().and_then(|g| g.routing_warning());
    let expired = gateway.as_ref().and_then(|g| g.policy_warning());
    let revoked = gateway.as_ref().and_then(|g| g.hub_warning());
    if let Some(items) = app.try_state::<TrayItems<R>>() {
        let text = match count {
            0 => "No pending approvals".to_string(),
            1 => "1 pending approval".to_string(),
            n => format!("{n} pending approvals"),
        };
        let _ = items.pending.set_text(text);
        let _ = items.pause.set_checked(paused);
        let _ = items.clients.set_text(if bypassed.is_some() {
            "⚠ AI clients bypass Countersign…"
        } else {
            "AI clients"
        });
    }
    if let Some(tray) = app.tray_by_id("main") {
        let warned = bypassed.is_some() || expired.is_some() || revoked.is_some();
        let icon = if count > 0 || paused || error || warned { PENDING } else { IDLE };
        if let Ok(image) = Image::from_bytes(icon) {
            let _ = tray.set_icon(Some(image));
        }
        let tip = if error {
            "Countersign: gateway stopped".to_string()
        } else if paused {
            "Countersign: AI tool access paused".to_string()
        } else if count > 0 {
            format!("Countersign: {count} waiting for approval")
        } else if bypassed.is_some() {
            "Countersign: AI clients use servers around it, as your organisation does not allow".to_string()
        } else if expired.is_some() {
            "Countersign: your organisation's policy has expired and could not be renewed".to_string()
        } else if revoked.is_some() {
            "Countersign: your company's hub revoked this device; local policy stays in force".to_string()
        } else {
            "Countersign".to_string()
        };
        let _ = tray.set_tooltip(Some(tip));
    }
}

/// Keeps the tray in step with the gateway's background checks.
pub async fn follow<R: Runtime>(app: AppHandle<R>) {
    loop {
        tokio::time::sleep(EVERY).await;
        refresh(&app);
    }
}

/// The kill switch: every call is refused while paused (the gateway records each change);
/// the windows and the tray follow.
pub fn set_paused<R: Runtime>(app: &AppHandle<R>, gateway: &countersign_gateway::Gateway, paused: bool) {
    if gateway.set_paused(paused) {
        let _ = app.emit("approvals-changed", ());
        refresh(app);
    }
}
