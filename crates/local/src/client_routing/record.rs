//! What `countersign clients install` changed, so `uninstall` can put it back:
//! `client-routes.json` in the data directory (owner-only). Each entry names the client's
//! file, the entry, the entry's original text and the Countersign server it now reaches.
//! Credentials never appear in it: an original's secret values are written as
//! placeholders naming the keychain item they were moved to.

use crate::home::{write_private, Home, HomeError};
use countersign_clients::edit::EntryPath;
use countersign_clients::ClientKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutedEntry {
    pub client: ClientKind,
    /// The client's file.
    pub file: PathBuf,
    /// The project folder, for a project's own file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<PathBuf>,
    pub entry: EntryPath,
    /// The entry's text before, with placeholders for moved secrets.
    pub original: String,
    /// The Countersign server the entry now reaches.
    pub server: String,
    /// Whether install added that server to Countersign's config (else it was there).
    pub added_server: bool,
    /// Keychain secrets the original's placeholders name (made by install, or already
    /// held for a reused server).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The file's mode bits before install first changed it (Unix), given back at
    /// uninstall: install makes a file holding a client token owner-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    pub at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Record {
    pub entries: Vec<RoutedEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error("{path}: not a record of routed clients: {message}")]
    Corrupt { path: PathBuf, message: String },
}

fn path(home: &Home) -> PathBuf {
    home.dir().join("client-routes.json")
}

impl Record {
    pub fn load(home: &Home) -> Result<Self, RecordError> {
        let path = path(home);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| RecordError::Corrupt { path, message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(source) => Err(HomeError::Io { path, source }.into()),
        }
    }

    pub fn save(&self, home: &Home) -> Result<(), RecordError> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        write_private(&path(home), text.as_bytes())?;
        Ok(())
    }

    /// The entries routed in `file`, in the order they were routed.
    pub fn in_file(&self, file: &Path) -> Vec<RoutedEntry> {
        self.entries.iter().filter(|e| e.file == file).cloned().collect()
    }

    /// Whether another routed entry still reaches `server`.
    pub fn server_in_use(&self, server: &str) -> bool {
        self.entries.iter().any(|e| e.server == server)
    }
}

/// The placeholder standing for the keychain secret `name` in a saved original.
pub fn placeholder(name: &str) -> String {
    format!("<<countersign-secret:{name}>>")
}
