//! Start at login: opt-in for the user, unless managed policy forces it. On Linux this is
//! an XDG autostart entry (`$XDG_CONFIG_HOME/autostart/countersign.desktop`); macOS
//! (launch agent) and Windows (Run key) come with their builds. It never starts anything
//! itself: it only writes or removes the entry the desktop reads at login.
//!
//! [`Autostart`] works on an entry at a path it is given; only [`enabled`] and [`set`]
//! read the process environment to find the user's, so tests never need to change it.

use std::path::{Path, PathBuf};

/// The autostart entry at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autostart {
    entry: PathBuf,
}

impl Autostart {
    /// The entry in the XDG config folder `config` (`config/autostart/countersign.desktop`).
    pub fn in_config_dir(config: &Path) -> Self {
        Autostart { entry: config.join("autostart").join("countersign.desktop") }
    }

    /// The user's entry: in `$XDG_CONFIG_HOME`, else `$HOME/.config`; None without either.
    pub fn for_user() -> Option<Self> {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(Self::in_config_dir(&config))
    }

    pub fn enabled(&self) -> bool {
        self.entry.exists()
    }

    /// Writes the entry (starting `exe` at login), or removes it; removing an absent
    /// entry is no error.
    pub fn set(&self, on: bool, exe: &Path) -> std::io::Result<()> {
        if !on {
            return match std::fs::remove_file(&self.entry) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            };
        }
        if let Some(dir) = self.entry.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = format!(
            "[Desktop Entry]\nType=Application\nName=Countersign\nComment=Governs what AI assistants do\nExec=\"{}\"\nX-GNOME-Autostart-enabled=true\n",
            exe.display()
        );
        std::fs::write(&self.entry, text)
    }
}

/// Whether the user's autostart entry exists.
pub fn enabled() -> bool {
    Autostart::for_user().is_some_and(|a| a.enabled())
}

/// Writes or removes the user's autostart entry, which starts this executable.
pub fn set(on: bool) -> std::io::Result<()> {
    let autostart = Autostart::for_user().ok_or_else(|| std::io::Error::other("no HOME or XDG_CONFIG_HOME"))?;
    autostart.set(on, &std::env::current_exe()?)
}

#[cfg(test)]
mod tests {
    use super::Autostart;
    use std::path::Path;

    /// A folder of this test's own (no environment variable is read or changed).
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cs-autostart-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_entry_comes_and_goes() {
        let dir = scratch("comes-and-goes");
        let autostart = Autostart::in_config_dir(&dir);
        assert!(!autostart.enabled());
        autostart.set(true, Path::new("/opt/Countersign/countersign-app")).unwrap();
        assert!(autostart.enabled());
        let text = std::fs::read_to_string(dir.join("autostart/countersign.desktop")).unwrap();
        assert!(
            text.contains("Exec=\"/opt/Countersign/countersign-app\"\n") && text.contains("Name=Countersign"),
            "{text}"
        );
        autostart.set(false, Path::new("unused")).unwrap();
        assert!(!autostart.enabled());
        autostart.set(false, Path::new("unused")).expect("removing an absent entry is no error");
        let _ = std::fs::remove_dir_all(dir);
    }
}
