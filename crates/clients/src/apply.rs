//! Writes a client's file safely: a timestamped copy of what was there first, then the new
//! text to a temporary file beside it and a rename over the old one, so the client never
//! reads half a file. The file keeps its permissions, and is made readable by its owner
//! alone when it now holds a client token.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn err(path: &Path) -> impl Fn(std::io::Error) -> WriteError + '_ {
    move |source| WriteError { path: path.to_path_buf(), source }
}

/// Copies `path` into `backups` as `<stamp>-<client>-<file name>` and returns the copy's
/// path. The copy is readable by its owner alone: it may hold credentials.
pub fn backup(path: &Path, backups: &Path, client: &str, stamp: &str) -> Result<PathBuf, WriteError> {
    std::fs::create_dir_all(backups).map_err(err(backups))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config".into());
    let mut to = backups.join(format!("{stamp}-{client}-{name}"));
    let mut n = 1;
    while to.exists() {
        n += 1;
        to = backups.join(format!("{stamp}-{client}-{n}-{name}"));
    }
    let bytes = std::fs::read(path).map_err(err(path))?;
    write_new(&to, &bytes, true)?;
    Ok(to)
}

/// Replaces `path`'s contents with `text` atomically.
pub fn write_atomic(path: &Path, text: &str, owner_only: bool) -> Result<(), WriteError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.countersign-{}", std::process::id()));
    write_new(&tmp, text.as_bytes(), owner_only)?;
    if !owner_only {
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&tmp, meta.permissions()).map_err(err(&tmp))?;
        }
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        WriteError { path: path.to_path_buf(), source: e }
    })
}

fn write_new(path: &Path, bytes: &[u8], owner_only: bool) -> Result<(), WriteError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if owner_only {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err(path))?;
    file.write_all(bytes).map_err(err(path))?;
    file.sync_all().map_err(err(path))
}

/// A timestamp for backup names: `20261129T123456Z` (UTC).
pub fn stamp(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    at.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_else(|_| at.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_dates() {
        let at = time::OffsetDateTime::from_unix_timestamp(1_796_043_296).unwrap();
        assert_eq!(stamp(at), "20261130T125456Z");
    }

    #[test]
    fn a_write_replaces_and_a_backup_keeps_the_old_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mcp.json");
        std::fs::write(&file, "old").unwrap();
        let copy = backup(&file, &dir.path().join("b"), "cursor", "20261129T000000Z").unwrap();
        write_atomic(&file, "new", true).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "old");
        let again = backup(&file, &dir.path().join("b"), "cursor", "20261129T000000Z").unwrap();
        assert_ne!(copy, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
