//! Writes a client's file safely: a timestamped copy of what was there first, then the new
//! text to a temporary file beside it and a rename over the old one, so the client never
//! reads half a file. The file keeps its permissions, is made readable by its owner alone
//! when it now holds a client token, or gets the mode it had before install back.
//!
//! A client's file that is a symbolic link (dotfile managers such as GNU Stow, chezmoi or
//! home-manager link them into place) is written through: the link is resolved, the
//! temporary file made in the target's folder and renamed over the target, so the link
//! stays a link and the managed copy changes. When the target cannot be replaced (a
//! read-only store), nothing is changed and the error says so. This module never replaces
//! a link with a regular file.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{link} is a link to {target}, which cannot be replaced ({source}); change it where the link points, \
         or replace the link with a copy of the file and run this again"
    )]
    Behind { link: PathBuf, target: PathBuf, source: std::io::Error },
}

fn err(path: &Path) -> impl Fn(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io { path: path.to_path_buf(), source }
}

/// The file `path` names: itself, or the file its symbolic links lead to.
pub fn resolve(path: &Path) -> Result<PathBuf, WriteError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(path).map_err(err(path)),
        Ok(_) => Ok(path.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path.to_path_buf()),
        Err(e) => Err(err(path)(e)),
    }
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

/// The permissions a written file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perms {
    /// The ones it has.
    Keep,
    /// Readable and writable by its owner alone (it holds a client token).
    OwnerOnly,
    /// These permission bits (Unix; never set-id or sticky bits; elsewhere the file keeps
    /// its own).
    Mode(u32),
}

/// The permission bits of the file `path` names (through its links); `None` off Unix.
pub fn mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).ok().map(|m| m.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Replaces `path`'s contents with `text` atomically; through its links, when it is one.
pub fn write_atomic(path: &Path, text: &str, perms: Perms) -> Result<(), WriteError> {
    let target = resolve(path)?;
    let behind = |e: WriteError| match e {
        WriteError::Io { source, .. } if target != path => {
            WriteError::Behind { link: path.to_path_buf(), target: target.clone(), source }
        }
        e => e,
    };
    replace(&target, text, perms).map_err(behind)
}

fn replace(path: &Path, text: &str, perms: Perms) -> Result<(), WriteError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.countersign-{}", std::process::id()));
    write_new(&tmp, text.as_bytes(), perms == Perms::OwnerOnly)?;
    let set = match perms {
        Perms::OwnerOnly => Ok(()),
        Perms::Keep => match std::fs::metadata(path) {
            Ok(meta) => std::fs::set_permissions(&tmp, meta.permissions()),
            Err(_) => Ok(()),
        },
        Perms::Mode(_mode) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(_mode & 0o777))
            }
            #[cfg(not(unix))]
            {
                std::fs::metadata(path).and_then(|meta| std::fs::set_permissions(&tmp, meta.permissions()))
            }
        }
    };
    if let Err(e) = set {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(&tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(path)(e)
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
        write_atomic(&file, "new", Perms::OwnerOnly).unwrap();
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

    #[cfg(unix)]
    #[test]
    fn a_linked_file_is_written_through_its_link() {
        let dir = tempfile::tempdir().unwrap();
        let dotfiles = dir.path().join("dotfiles");
        std::fs::create_dir(&dotfiles).unwrap();
        let target = dotfiles.join("claude.json");
        std::fs::write(&target, "old").unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        let link = config.join("claude_desktop_config.json");
        std::os::unix::fs::symlink("../dotfiles/claude.json", &link).unwrap();

        let copy = backup(&link, &dir.path().join("b"), "claude-desktop", "20261129T000000Z").unwrap();
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "old", "the backup holds the target's bytes");
        write_atomic(&link, "new", Perms::Keep).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("../dotfiles/claude.json"));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new", "the target got the new text");
        let leftovers: Vec<_> =
            std::fs::read_dir(&config).unwrap().chain(std::fs::read_dir(&dotfiles).unwrap()).collect();
        assert_eq!(leftovers.len(), 2, "no temporary file left beside either");

        // A target whose folder cannot be written: refused with a message, nothing changed.
        // (Root writes anyway; the probe tells.)
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dotfiles, std::fs::Permissions::from_mode(0o500)).unwrap();
        let writable = std::fs::write(dotfiles.join("probe"), "").is_ok();
        let refused = write_atomic(&link, "newer", Perms::Keep);
        std::fs::set_permissions(&dotfiles, std::fs::Permissions::from_mode(0o700)).unwrap();
        if writable {
            return;
        }
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("is a link to") && message.contains("dotfiles/claude.json"), "{message}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }

    #[cfg(unix)]
    #[test]
    fn a_write_keeps_sets_or_restores_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mcp.json");
        std::fs::write(&file, "a").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let before = mode(&file);
        assert_eq!(before, Some(0o640));
        write_atomic(&file, "b", Perms::Keep).unwrap();
        assert_eq!(mode(&file), Some(0o640));
        write_atomic(&file, "c", Perms::OwnerOnly).unwrap();
        assert_eq!(mode(&file), Some(0o600));
        write_atomic(&file, "d", Perms::Mode(0o640)).unwrap();
        assert_eq!(mode(&file), Some(0o640), "the mode from before is back");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "d");
        write_atomic(&file, "e", Perms::Mode(0o4755)).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777, 0o755, "never set-id");
    }
}
