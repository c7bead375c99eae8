//! Opens a sign-in page in the user's browser through the operating system, never through
//! a shell: the URL is checked again (`guard`) and handed over as one value. On Linux GLib's
//! default-application lookup (`gio open`, which starts the desktop's browser for the
//! URL's scheme as the desktop's own settings say), else the XDG desktop portal's OpenURI
//! over D-Bus; `open` on macOS; the URL protocol handler on Windows. `xdg-open` is not
//! used: it is a shell script.

use super::guard;
use url::Url;

/// Opens `url` (which must pass [`guard::check_endpoint`]) in the default browser.
pub async fn open(url: &Url) -> Result<(), String> {
    let checked = guard::check_endpoint("authorization URL", url.as_str()).map_err(|e| e.to_string())?;
    open_checked(checked).await
}

#[cfg(target_os = "linux")]
async fn open_checked(url: Url) -> Result<(), String> {
    let gio = tokio::process::Command::new("gio")
        .args(["open", url.as_str()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    let why = match tokio::time::timeout(std::time::Duration::from_secs(15), gio).await {
        Ok(Ok(out)) if out.status.success() => return Ok(()),
        Ok(Ok(out)) => format!("gio open: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Ok(Err(e)) => format!("gio: {e}"),
        Err(_) => "gio open did not finish".to_string(),
    };
    tracing::debug!("{why}; trying the desktop portal");
    portal(&url).await.map_err(|portal_error| format!("{why}; desktop portal: {portal_error}"))
}

#[cfg(target_os = "linux")]
async fn portal(url: &Url) -> Result<(), String> {
    use std::collections::HashMap;
    let conn = zbus::Connection::session().await.map_err(|e| e.to_string())?;
    let options: HashMap<&str, zbus::zvariant::Value> = HashMap::new();
    conn.call_method(
        Some("org.freedesktop.portal.Desktop"),
        "/org/freedesktop/portal/desktop",
        Some("org.freedesktop.portal.OpenURI"),
        "OpenURI",
        &("", url.as_str(), options),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[cfg(target_os = "macos")]
async fn open_checked(url: Url) -> Result<(), String> {
    spawn("/usr/bin/open", &[url.as_str()])
}

#[cfg(target_os = "windows")]
async fn open_checked(url: Url) -> Result<(), String> {
    spawn("rundll32.exe", &["url.dll,FileProtocolHandler", url.as_str()])
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
async fn open_checked(_url: Url) -> Result<(), String> {
    Err("no browser opener on this platform; open the URL yourself".into())
}

/// Starts `program` with `args` as separate arguments (no shell) and does not wait for it.
#[cfg(any(target_os = "macos", target_os = "windows"))]
fn spawn(program: &str, args: &[&str]) -> Result<(), String> {
    std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|mut child| {
            // Reaped on a thread of its own, so no zombie is left behind.
            std::thread::spawn(move || child.wait());
        })
        .map_err(|e| format!("cannot start {program}: {e}"))
}
