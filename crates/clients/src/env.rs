//! Where a user's configuration lives, from the environment alone (`HOME`, the XDG
//! variables, `APPDATA`), so tests can point everything at a temporary home. Never reads
//! anything itself.

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    MacOs,
    Windows,
}

#[derive(Debug, Clone)]
pub struct Env {
    pub os: Os,
    pub home: PathBuf,
    /// `XDG_CONFIG_HOME`, or `~/.config`.
    pub config: PathBuf,
    /// `%APPDATA%` on Windows; the platform's application-support folder elsewhere.
    pub app_data: PathBuf,
}

impl Env {
    /// The current user's, from this process's environment.
    pub fn from_process() -> Option<Self> {
        let os = if cfg!(target_os = "macos") {
            Os::MacOs
        } else if cfg!(windows) {
            Os::Windows
        } else {
            Os::Linux
        };
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = var("HOME").or_else(|| var("USERPROFILE"))?;
        Some(Env::for_home(os, home, var("XDG_CONFIG_HOME"), var("APPDATA")))
    }

    /// The layout under `home` for `os`, with the optional overrides the environment gives.
    pub fn for_home(os: Os, home: PathBuf, xdg_config: Option<PathBuf>, appdata: Option<PathBuf>) -> Self {
        let config = xdg_config.unwrap_or_else(|| home.join(".config"));
        let app_data = match os {
            Os::Windows => appdata.unwrap_or_else(|| home.join("AppData").join("Roaming")),
            Os::MacOs => home.join("Library").join("Application Support"),
            Os::Linux => config.clone(),
        };
        Env { os, home, config, app_data }
    }
}
