//! The journal's single-writer lock: taken by [`crate::Journal::open`] and held as long
//! as the writer lives, so two gateways never fork one journal's chain and a starting
//! gateway never closes another's calls. Locks only; never reads or writes the journal.

use std::path::{Path, PathBuf};

/// Why the lock was not taken; the journal turns it into its own error.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another writer holds it (at `lock`).
    InUse { lock: PathBuf },
    /// The lock could not be opened or taken.
    Failed(String),
}

/// Takes the journal's lock: one writer a journal, so two gateways never fork its chain
/// and a starting gateway never closes another's calls. On Unix the lock is on the
/// journal file itself (an advisory `flock`, which SQLite's own `fcntl` locks do not touch),
/// so neither removing a lock file nor reaching the journal through a link gets around
/// it; on Windows, where a whole-file lock would shut SQLite out, a lock file beside it.
/// A journal closed a moment ago may still be held by its writer thread finishing: wait a
/// little for that, then refuse.
pub(crate) async fn lock_journal(path: &Path) -> Result<std::fs::File, LockError> {
    let lock = if cfg!(unix) {
        path.to_path_buf()
    } else {
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&lock)
        .map_err(|e| LockError::Failed(format!("cannot open {} to lock it: {e}", lock.display())))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LockError::InUse { lock });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(LockError::Failed(format!("cannot lock {}: {e}", lock.display())))
            }
        }
    }
}
