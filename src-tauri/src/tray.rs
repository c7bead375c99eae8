//! The tray icon: its state (idle, pending approvals, paused, error) and its menu
//! (pending approvals, pause all AI tool access, open Countersign, quit). Where the
//! desktop has no tray (a bare X server), the app still runs: its window and
//! notifications do the work, and the failure is logged once.

use crate::state::AppState;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

const IDLE: &[u8] = include_bytes!("../icons/tray.png");
const PENDING: &[u8] = include_bytes!("../icons/tray-pending.png");

pub struct TrayItems {
    pending: MenuItem<tauri::Wry>,
    pause: CheckMenuItem<tauri::Wry>,
}

pub fn build(app: &AppHandle) -> tauri::Result<()> {
    let pending = MenuItem::with_id(app, "pending", "No pending approvals", true, None::<&str>)?;
    let activity = MenuItem::with_id(app, "activity", "Recent activity", true, None::<&str>)?;
    let pause = CheckMenuItem::with_id(app, "pause", "Pause all AI tool access", true, false, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open Countersign", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let separator = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&pending, &activity, &pause, &separator, &open, &quit])?;
    TrayIconBuilder::with_id("main")
        .icon(Image::from_bytes(IDLE)?)
        .tooltip("Countersign")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "pending" | "open" => crate::show_main(app, "approvals"),
            "activity" => crate::show_main(app, "activity"),
            "pause" => {
                if let Some(shared) = app.state::<AppState>().shared() {
                    let paused = !shared.paused.load(std::sync::atomic::Ordering::SeqCst);
                    crate::state::set_paused(app, &shared, paused);
                }
            }
            "quit" => app.exit(0),
            _ => {}
        })
        .build(app)?;
    app.manage(TrayItems { pending, pause });
    Ok(())
}

/// Brings the tray up to date with the approvals and the kill switch.
pub fn refresh(app: &AppHandle) {
    let state = app.state::<AppState>();
    let count = state.approver.pending_full().len();
    let paused = state.shared().is_some_and(|s| s.paused.load(std::sync::atomic::Ordering::SeqCst));
    let error = state.gateway_error().is_some();
    if let Some(items) = app.try_state::<TrayItems>() {
        let text = match count {
            0 => "No pending approvals".to_string(),
            1 => "1 pending approval".to_string(),
            n => format!("{n} pending approvals"),
        };
        let _ = items.pending.set_text(text);
        let _ = items.pause.set_checked(paused);
    }
    if let Some(tray) = app.tray_by_id("main") {
        let icon = if count > 0 || paused || error { PENDING } else { IDLE };
        if let Ok(image) = Image::from_bytes(icon) {
            let _ = tray.set_icon(Some(image));
        }
        let tip = if error {
            "Countersign: gateway stopped".to_string()
        } else if paused {
            "Countersign: AI tool access paused".to_string()
        } else if count > 0 {
            format!("Countersign: {count} waiting for approval")
        } else {
            "Countersign".to_string()
        };
        let _ = tray.set_tooltip(Some(tip));
    }
}
