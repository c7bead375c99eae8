//! The per-user data directory and the small files kept in it: the journal, the token
//! store, the device id, the redaction salt, the control token and the running
//! gateway's runtime file (where it listens, its config, the session bus it reaches the
//! keychain on). `COUNTERSIGN_HOME` overrides the location (tests use it); the path is
//! made absolute, so every process names the same folder the same way.
//!
//! Every file here is created readable by the user alone (0600, directory 0700).
//! This module never logs a file's contents.

use rand::RngCore;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("no data directory: set COUNTERSIGN_HOME or HOME")]
    NoHome,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
}

/// Where a running gateway listens, written by `serve` and read by the CLI and the shim.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RuntimeInfo {
    pub pid: u32,
    pub listen: std::net::SocketAddr,
    /// The config file it runs with, where `countersign clients install` adds servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
}

/// `gateway.json`: the [`RuntimeInfo`], and the session bus the writing process reaches
/// the keychain on ([`crate::session_bus`]), which the stdio shim adopts when a client
/// starts it without one.
#[derive(serde::Serialize, serde::Deserialize)]
struct RuntimeFile {
    #[serde(flatten)]
    info: RuntimeInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_bus: Option<String>,
}

impl Home {
    pub fn resolve() -> Result<Self, HomeError> {
        let dir = match std::env::var_os("COUNTERSIGN_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => directories::ProjectDirs::from("dev", "Countersign", "Countersign")
                .ok_or(HomeError::NoHome)?
                .data_dir()
                .to_path_buf(),
        };
        Self::at(dir)
    }

    pub fn at(dir: PathBuf) -> Result<Self, HomeError> {
        let dir = std::path::absolute(&dir).map_err(|source| HomeError::Io { path: dir.clone(), source })?;
        fs::create_dir_all(&dir).map_err(|source| HomeError::Io { path: dir.clone(), source })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(|source| HomeError::Io { path: dir.clone(), source })?;
        }
        Ok(Home { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("audit.db")
    }
    pub fn tokens_path(&self) -> PathBuf {
        self.dir.join("tokens.json")
    }
    fn runtime_path(&self) -> PathBuf {
        self.dir.join("gateway.json")
    }

    /// Where the running gateway's shim socket is (Unix): in this folder, so only this
    /// user reaches it.
    pub fn shim_socket_path(&self) -> PathBuf {
        self.dir.join("gateway.sock")
    }

    /// The running gateway's shim pipe (Windows): named after this folder, so two data
    /// folders never share one.
    pub fn shim_pipe_name(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.dir.to_string_lossy().as_bytes());
        format!(r"\\.\pipe\countersign-{}", &hex::encode(digest)[..24])
    }

    /// A stable random id for this device, made on first use.
    pub fn device_id(&self) -> Result<String, HomeError> {
        self.read_or_create("device-id", || uuid::Uuid::now_v7().to_string())
    }

    /// The salt for redaction hashes, made on first use.
    pub fn redaction_salt(&self) -> Result<String, HomeError> {
        self.read_or_create("redaction.salt", || random_token(""))
    }

    /// The token the CLI presents to the gateway's control endpoints.
    pub fn control_token(&self) -> Result<String, HomeError> {
        self.read_or_create("control.token", || random_token("csc_"))
    }

    /// The control token if one was made; never makes one (a client proving who the
    /// gateway is must not invent the key it checks with).
    pub fn read_control_token(&self) -> Option<String> {
        let text = fs::read_to_string(self.dir.join("control.token")).ok()?;
        Some(text.trim().to_string()).filter(|t| !t.is_empty())
    }

    /// Records the running gateway, with the session bus this process is on.
    pub fn write_runtime(&self, info: &RuntimeInfo) -> Result<(), HomeError> {
        self.write_runtime_file(info, crate::session_bus::current())
    }

    fn write_runtime_file(&self, info: &RuntimeInfo, session_bus: Option<String>) -> Result<(), HomeError> {
        let file = RuntimeFile { info: info.clone(), session_bus };
        let text = serde_json::to_string(&file).unwrap_or_default();
        write_private(&self.runtime_path(), text.as_bytes())
    }

    fn read_runtime_file(&self) -> Option<RuntimeFile> {
        let text = fs::read_to_string(self.runtime_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn read_runtime(&self) -> Option<RuntimeInfo> {
        self.read_runtime_file().map(|f| f.info)
    }

    /// The session bus address the running gateway recorded, if any.
    pub fn recorded_session_bus(&self) -> Option<String> {
        self.read_runtime_file().and_then(|f| f.session_bus)
    }

    pub fn clear_runtime(&self, pid: u32) {
        if self.read_runtime().is_some_and(|r| r.pid == pid) {
            let _ = fs::remove_file(self.runtime_path());
        }
    }

    pub(crate) fn read_or_create(&self, name: &str, make: impl FnOnce() -> String) -> Result<String, HomeError> {
        let path = self.dir.join(name);
        match fs::read_to_string(&path) {
            Ok(existing) if !existing.trim().is_empty() => return Ok(existing.trim().to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(HomeError::Io { path, source }),
        }
        let value = make();
        write_private(&path, value.as_bytes())?;
        Ok(value)
    }
}

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), HomeError> {
    let io = |source| HomeError::Io { path: path.to_path_buf(), source };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// 256 random bits, base64url, with a prefix that lets scanners recognise the kind of token.
pub fn random_token(prefix: &str) -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sec_03_files_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("h")).unwrap();
        let a = home.control_token().unwrap();
        assert_eq!(a, home.control_token().unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(home.dir().join("control.token")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = fs::metadata(home.dir()).unwrap().permissions().mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
    }

    #[test]
    fn the_runtime_file_records_the_session_bus() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("h")).unwrap();
        let info = RuntimeInfo { pid: 7, listen: "127.0.0.1:47800".parse().unwrap(), config: None };
        home.write_runtime_file(&info, Some("unix:path=/tmp/dbus-x,guid=1".into())).unwrap();
        assert_eq!(home.read_runtime().map(|r| (r.pid, r.listen)), Some((7, info.listen)));
        assert_eq!(home.recorded_session_bus().as_deref(), Some("unix:path=/tmp/dbus-x,guid=1"));
        home.write_runtime_file(&info, None).unwrap();
        assert_eq!(home.recorded_session_bus(), None);
        assert!(home.read_runtime().is_some(), "a file without one still reads");
    }
}
