//! The journal's files are readable by their owner alone: `audit.db` is created 0600
//! before SQLite opens it (SQLite then gives its `-wal` and `-shm` files the database's
//! own mode), and a journal left with looser modes by an earlier version is tightened
//! when it is opened. It must never loosen a mode, and never touch a file other than the
//! journal's own three.

use std::path::{Path, PathBuf};

/// The journal's files: the database and SQLite's write-ahead log and shared memory.
fn journal_files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    [db.to_path_buf(), with("-wal"), with("-shm")]
}

/// Creates `db` (empty, 0600) if it is missing and makes the journal's existing files
/// owner-only. An in-memory or otherwise unusual path is left to SQLite.
pub(crate) fn make_private(db: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if db.as_os_str().is_empty() || db.as_os_str() == ":memory:" {
            return Ok(());
        }
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(db) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for file in journal_files(db) {
            match std::fs::symlink_metadata(&file) {
                Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o077 != 0 => {
                    let mode = meta.permissions().mode() & 0o700;
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))?;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = journal_files(db);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_journal_is_created_owner_only_and_old_loose_files_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("audit.db");
        make_private(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        let [_, wal, shm] = journal_files(&db);
        for f in [&db, &wal, &shm] {
            std::fs::write(f, b"").unwrap();
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let other = dir.path().join("other.txt");
        std::fs::write(&other, b"").unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
        make_private(&db).unwrap();
        for f in [&db, &wal, &shm] {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        assert_eq!(mode(&other), 0o644, "only the journal's own files are touched");
    }

    #[tokio::test]
    async fn the_opened_journal_and_its_wal_and_shm_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("audit.db");
        let journal = crate::Journal::open(&db, Default::default()).await.unwrap();
        journal.commit(crate::Record::new(crate::RecordKind::Policy, "u", "d", crate::Decision::Allow)).await.unwrap();
        for f in journal_files(&db) {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }
}
