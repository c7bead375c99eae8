//! The app's windows: the main window on a tab, and a small always-on-top window for one
//! prompt. Opening a window never answers or changes anything; a window that cannot be
//! opened is logged, and the prompt stays waiting (no answer is a denial).

use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

/// Shows the main window on a tab, creating it again if it was closed.
pub fn show_main<R: Runtime>(app: &AppHandle<R>, tab: &str) {
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
pub fn open_prompt<R: Runtime>(app: &AppHandle<R>, prompt: &str) {
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
