//! The managed bundle's last good copy, which is also its rollback floor.
//!
//! A signed bundle, once accepted, holds until a newer valid one replaces it: deleting or
//! editing the delivered file, letting it expire, or deleting the copies kept beside it
//! does not take its rules away. The floor is never a bare version number: it is the last
//! good bundle itself (document and signature, byte for byte), checked against the
//! managed key every time it is used. It is kept in three places:
//! - in the running gateway's memory ([`BundleKeeper`]), which no file change lowers;
//! - in the managed OS location (`last-good-bundle.toml` + `.minisig`), which only an
//!   administrator can write: IT may place one there, and a gateway allowed to write
//!   there (one run by an administrator) keeps its last good one there;
//! - in the data directory (`policy/accepted.toml` + `.minisig`), which survives a
//!   restart but which the user can delete (then the hub's version on the next fetch,
//!   and the expiry of whatever older bundle they kept, bound what they gain).
//!
//! This module keeps and reports; choosing and verifying is `policy_layers`'. It never
//! trusts a version it did not read from a bundle whose signature verified.

use countersign_policy::BundleExpiry;
use std::sync::Mutex;

/// A signed bundle as stored: the document and its minisign signature, unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCopy {
    pub document: Vec<u8>,
    pub signature: String,
}

/// The bundle in force, as the status and the tray show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce {
    pub version: u64,
    /// RFC 3339, as the bundle says.
    pub expires: String,
    pub expires_unix: i64,
    pub expired: bool,
    pub on_expiry: BundleExpiry,
}

impl InForce {
    /// What a person must know while the bundle in force has expired.
    pub fn warning(&self) -> Option<String> {
        self.expired.then(|| {
            let what = match self.on_expiry {
                BundleExpiry::KeepEnforcing => "its rules stay in force",
                BundleExpiry::DenyGoverned => "every tool it governed is denied",
            };
            format!(
                "managed policy bundle {} expired at {}; {what} until the hub delivers a newer one (is the hub out \
                 of reach?)",
                self.version, self.expires
            )
        })
    }
}

/// What the running gateway remembers between reloads.
#[derive(Debug, Default)]
pub struct BundleKeeper {
    state: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    last_good: Option<SignedCopy>,
    in_force: Option<InForce>,
    /// The version whose expiry was last reported (once per version).
    announced: Option<u64>,
}

impl BundleKeeper {
    fn with<T>(&self, f: impl FnOnce(&mut Kept) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// The last good bundle's signed bytes (verified again by whoever uses them).
    pub fn last_good(&self) -> Option<SignedCopy> {
        self.with(|k| k.last_good.clone())
    }

    pub fn keep(&self, copy: Option<SignedCopy>, in_force: Option<InForce>) {
        self.with(|k| {
            k.last_good = copy;
            k.in_force = in_force;
        })
    }

    pub fn in_force(&self) -> Option<InForce> {
        self.with(|k| k.in_force.clone())
    }

    /// The rollback floor: the version of the bundle in force. A bundle offered with a
    /// lower version is refused.
    pub fn floor(&self) -> Option<u64> {
        self.with(|k| k.in_force.as_ref().map(|b| b.version))
    }

    /// When the bundle in force expires, if it has not yet: the policy is read again then.
    pub fn next_expiry(&self) -> Option<i64> {
        self.with(|k| k.in_force.as_ref().filter(|b| !b.expired).map(|b| b.expires_unix))
    }

    /// The warning while the bundle in force has expired.
    pub fn warning(&self) -> Option<String> {
        self.with(|k| k.in_force.as_ref().and_then(InForce::warning))
    }

    /// The warning, the first time it is asked for a given expired version (for the
    /// journal record the hub raises an alert for).
    pub fn expiry_news(&self) -> Option<String> {
        self.with(|k| {
            let b = k.in_force.as_ref().filter(|b| b.expired)?;
            if k.announced == Some(b.version) {
                return None;
            }
            k.announced = Some(b.version);
            b.warning()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_force(version: u64, expired: bool) -> InForce {
        InForce {
            version,
            expires: "2030-01-01T00:00:00Z".into(),
            expires_unix: 1_893_456_000,
            expired,
            on_expiry: BundleExpiry::KeepEnforcing,
        }
    }

    #[test]
    fn an_expiry_is_announced_once_per_version_and_warned_while_it_lasts() {
        let k = BundleKeeper::default();
        assert_eq!((k.floor(), k.warning(), k.expiry_news()), (None, None, None));
        k.keep(None, Some(in_force(5, false)));
        assert_eq!(k.floor(), Some(5));
        assert_eq!(k.next_expiry(), Some(1_893_456_000));
        assert!(k.warning().is_none() && k.expiry_news().is_none());
        k.keep(None, Some(in_force(5, true)));
        assert!(k.next_expiry().is_none());
        let news = k.expiry_news().unwrap();
        assert!(news.contains("bundle 5 expired") && news.contains("stay in force"), "{news}");
        assert!(k.expiry_news().is_none(), "once");
        assert!(k.warning().is_some(), "the warning stays while it lasts");
        k.keep(None, Some(in_force(6, true)));
        assert!(k.expiry_news().is_some(), "a newer expired bundle is news again");
    }
}
