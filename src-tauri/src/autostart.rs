//! Start at login: opt-in for the user, unless managed policy forces it. On Linux this is
//! an XDG autostart entry (`$XDG_CONFIG_HOME/autostart/countersign.desktop`); macOS
//! (launch agent) and Windows (Run key) come with their builds. It never starts anything
//! itself: it only writes or removes the entry the desktop reads at login.

use std::path::PathBuf;

fn entry_path() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("autostart").join("countersign.desktop"))
}

pub fn enabled() -> bool {
    entry_path().is_some_and(|p| p.exists())
}

/// Writes or removes the autostart entry.
pub fn set(on: bool) -> std::io::Result<()> {
    let path = entry_path().ok_or_else(|| std::io::Error::other("no HOME or XDG_CONFIG_HOME"))?;
    if !on {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
    }
    let exe = std::env::current_exe()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = format!(
        "[Desktop Entry]\nType=Application\nName=Countersign\nComment=Governs what AI assistants do\nExec=\"{}\"\nX-GNOME-Autostart-enabled=true\n",
        exe.display()
    );
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_entry_comes_and_goes() {
        let dir = std::env::temp_dir().join(format!("cs-autostart-{}", std::process::id()));
        // SAFETY: single-threaded test setup of this process's own environment.
        unsafe { std::env::set_var("XDG_CONFIG_HOME", &dir) };
        assert!(!super::enabled());
        super::set(true).unwrap();
        assert!(super::enabled());
        let text = std::fs::read_to_string(dir.join("autostart/countersign.desktop")).unwrap();
        assert!(text.contains("Exec=") && text.contains("Name=Countersign"));
        super::set(false).unwrap();
        assert!(!super::enabled());
        let _ = std::fs::remove_dir_all(dir);
    }
}
