//! Reads the policy layers from disk and keeps the gateway's policy current.
//!
//! Layers: the user's `[policy]` in the config file; the managed file (`managed.toml` in
//! the OS location: `/etc/countersign` on Linux, `/Library/Application Support/Countersign`
//! on macOS, `%ProgramData%\Countersign` on Windows); and a signed bundle
//! (`<data dir>/policy/bundle.toml` with its minisign signature `bundle.toml.minisig`),
//! verified against the key only the managed file can set. The files are watched; a
//! change is applied without a restart. A layer that does not load is rejected with a
//! message naming the file, and the last good policy stays in force.
//!
//! The bundle's last good copy ([`crate::managed_bundle`]) holds until a newer valid
//! bundle replaces it: a deleted, edited, older or expired delivery never takes its rules
//! away, and an expired last good bundle does what the managed file's `bundle_expiry`
//! says. `COUNTERSIGN_MANAGED_DIR` never replaces the OS location: the `managed.toml` in
//! it adds deny and ask rules to the user's layer and nothing else. Debug builds (the
//! tests') may stand a folder in for the OS location with
//! `COUNTERSIGN_TEST_OS_MANAGED_DIR`; release builds never read that variable. This module
//! must never let a broken, unverified, rolled-back or user-chosen layer weaken the
//! policy in force.

use crate::clock::now_unix;
use crate::config::Config;
use crate::home::{write_private, Home};
use crate::managed_bundle::{BundleKeeper, InForce, SignedCopy};
use countersign_local::managed_files::{
    accepted_path, added_managed_file, bundle_dir, read_managed, read_toml, signature_path,
};
pub use countersign_local::managed_files::{
    bundle_key, bundle_path, hub_public_key, managed_copy_path, managed_dir, managed_file, LayerError, TEST_OS_DIR_VAR,
};
use countersign_policy::{
    expired_policy, verify_bundle, verify_kept_bundle, Layers, ManagedFile, Policy, PolicySettings, VerifiedBundle,
};
use std::path::{Path, PathBuf};

/// The user's own `[policy]` with the deny and ask rules of the added managed folder.
fn with_added_rules(user: &PolicySettings) -> Result<PolicySettings, LayerError> {
    let Some(path) = added_managed_file() else { return Ok(user.clone()) };
    let Some(added) = read_toml::<ManagedFile>(&path)? else { return Ok(user.clone()) };
    let ignored = {
        let mut rest = added.policy.clone();
        rest.deny.clear();
        rest.ask.clear();
        rest != PolicySettings::default() || added.managed != Default::default()
    };
    if ignored {
        tracing::warn!(
            "{}: COUNTERSIGN_MANAGED_DIR only adds deny and ask rules; its other settings are ignored (managed \
             policy is read from {})",
            path.display(),
            managed_dir().display()
        );
    }
    let mut user = user.clone();
    user.deny.extend(added.policy.deny);
    user.ask.extend(added.policy.ask);
    Ok(user)
}

/// A signed bundle as stored at `path` (and its signature beside it), if there is one.
fn read_copy(path: &Path) -> Result<Option<SignedCopy>, LayerError> {
    // Only a regular file is read: a FIFO put in its place would block the reload.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            return Err(LayerError::File { path: path.into(), message: "not a regular file".into() });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let document = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LayerError::File { path: path.into(), message: format!("cannot read: {e}") }),
    };
    let sig_path = signature_path(path);
    let signature =
        if sig_path.is_file() { std::fs::read_to_string(sig_path).unwrap_or_default() } else { String::new() };
    Ok(Some(SignedCopy { document, signature }))
}

/// Writes a signed copy (signature first: a pair cut in between does not verify).
fn write_copy(path: &Path, copy: &SignedCopy) -> Result<(), crate::home::HomeError> {
    write_private(&signature_path(path), copy.signature.as_bytes())?;
    write_private(path, &copy.document)
}

/// Where the delivered bundle and the last good copies are.
struct BundleFiles {
    delivered: PathBuf,
    home_copy: PathBuf,
    managed_copy: PathBuf,
}

impl BundleFiles {
    fn of(home: &Home) -> Self {
        BundleFiles { delivered: bundle_path(home), home_copy: accepted_path(home), managed_copy: managed_copy_path() }
    }
}

/// The bundle chosen to be in force and what it is.
struct Chosen {
    bundle: VerifiedBundle,
    copy: SignedCopy,
}

/// Chooses the bundle in force: the delivered one if it verifies, has not expired and
/// is not older than the floor; otherwise the last good one (the newest kept copy that
/// verifies, expired or not). The floor is the newest version among the kept copies
/// whose signature verifies.
fn choose(
    files: &BundleFiles,
    keeper: &BundleKeeper,
    key: Option<&str>,
    now: i64,
    rejected: &mut Vec<LayerError>,
) -> Option<Chosen> {
    let delivered_path = files.delivered.clone();
    let (home_copy, managed_copy) = (&files.home_copy, &files.managed_copy);
    let mut kept: Vec<(VerifiedBundle, SignedCopy)> = Vec::new();
    let memory = keeper.last_good();
    if let Some(copy) = &memory {
        match verify_kept_bundle(&copy.document, Some(&copy.signature), key, None) {
            Ok(b) => kept.push((b, copy.clone())),
            Err(e) => rejected.push(LayerError::Policy(format!("the bundle in force no longer verifies: {e}"))),
        }
    }
    for path in [managed_copy, home_copy] {
        match read_copy(path) {
            Ok(Some(copy)) => match verify_kept_bundle(&copy.document, Some(&copy.signature), key, None) {
                Ok(b) => kept.push((b, copy)),
                Err(e) => rejected.push(LayerError::File {
                    path: path.to_path_buf(),
                    message: format!("this copy of the last good bundle is ignored: {e}"),
                }),
            },
            Ok(None) => {}
            Err(e) => rejected.push(e),
        }
    }
    // The newest kept copy; among equals, memory first, then the managed location's.
    let mut last_good: Option<(VerifiedBundle, SignedCopy)> = None;
    for (b, copy) in kept {
        if last_good.as_ref().is_none_or(|(best, _)| b.header.version > best.header.version) {
            last_good = Some((b, copy));
        }
    }
    let floor = last_good.as_ref().map(|(b, _)| b.header.version);
    let delivered = match read_copy(&delivered_path) {
        Ok(d) => d,
        Err(e) => {
            rejected.push(e);
            None
        }
    };
    match delivered {
        Some(copy) if last_good.as_ref().is_some_and(|(_, good)| *good == copy) => {}
        Some(copy) => {
            let signature = Some(copy.signature.as_str()).filter(|s| !s.trim().is_empty());
            match verify_bundle(&copy.document, signature, key, now, floor) {
                Ok(bundle) => return Some(Chosen { bundle, copy }),
                Err(e) => rejected.push(LayerError::File { path: delivered_path, message: e.to_string() }),
            }
        }
        None => {
            if let Some((b, _)) = &last_good {
                if memory.is_some() || home_copy.exists() {
                    rejected.push(LayerError::File {
                        path: delivered_path,
                        message: format!("missing; the last good bundle (version {}) stays in force", b.header.version),
                    });
                }
            }
        }
    }
    last_good.map(|(bundle, copy)| Chosen { bundle, copy })
}

/// Keeps the bundle in force as the last good one, in the data directory and, where this
/// process may write there, in the managed location (each written only when it differs).
fn keep_copies(files: &BundleFiles, copy: &SignedCopy) {
    for (path, admin_only) in [(&files.home_copy, false), (&files.managed_copy, true)] {
        if read_copy(path).ok().flatten().as_ref() == Some(copy) {
            continue;
        }
        if admin_only && !path.parent().is_some_and(Path::is_dir) {
            continue;
        }
        match write_copy(path, copy) {
            Ok(()) => {}
            Err(crate::home::HomeError::Io { source, .. })
                if admin_only && source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                tracing::debug!("{}: not writable by this user; the data directory keeps the copy", path.display());
            }
            Err(e) => tracing::warn!("cannot keep the last good bundle: {e}"),
        }
    }
}

/// Reads every layer (as a command does: no memory of an earlier load).
pub fn load(user: &PolicySettings, home: &Home) -> Result<(Layers, Vec<LayerError>), LayerError> {
    load_with(user, home, &BundleKeeper::default())
}

/// Reads every layer. A bundle that fails verification is reported in `rejected`, and
/// the last good one stays, so a bad or missing delivery never removes managed rules.
pub fn load_with(
    user: &PolicySettings,
    home: &Home,
    keeper: &BundleKeeper,
) -> Result<(Layers, Vec<LayerError>), LayerError> {
    let managed = read_managed()?;
    let user = with_added_rules(user)?;
    let settings = managed.as_ref().map(|m| m.managed.clone()).unwrap_or_default();
    let mut rejected = Vec::new();
    let bundle = bundle_layer(&BundleFiles::of(home), keeper, &settings, now_unix(), &mut rejected);
    Ok((Layers { user, managed, bundle }, rejected))
}

/// The bundle layer: the bundle in force (as its expiry makes it), kept as the last good.
fn bundle_layer(
    files: &BundleFiles,
    keeper: &BundleKeeper,
    settings: &countersign_policy::ManagedSettings,
    now: i64,
    rejected: &mut Vec<LayerError>,
) -> Option<(PolicySettings, u64)> {
    let key = settings.bundle_public_key.as_deref();
    match choose(files, keeper, key, now, rejected) {
        Some(Chosen { bundle, copy, .. }) => {
            keep_copies(files, &copy);
            let expired = bundle.is_expired(now);
            let in_force = InForce {
                version: bundle.header.version,
                expires: bundle.header.expires.clone(),
                expires_unix: bundle.expires_unix,
                expired,
                on_expiry: settings.bundle_expiry,
            };
            keeper.keep(Some(copy), Some(in_force));
            let policy = if expired { expired_policy(&bundle.policy, settings.bundle_expiry) } else { bundle.policy };
            Some((policy, bundle.header.version))
        }
        None => {
            keeper.keep(None, None);
            None
        }
    }
}

/// Loads the layers and compiles them (as a command does).
pub fn compile(user: &PolicySettings, home: &Home) -> Result<(Policy, Vec<LayerError>), LayerError> {
    compile_with(user, home, &BundleKeeper::default())
}

/// Loads the layers with the running gateway's memory of the last good bundle and
/// compiles them.
pub fn compile_with(
    user: &PolicySettings,
    home: &Home,
    keeper: &BundleKeeper,
) -> Result<(Policy, Vec<LayerError>), LayerError> {
    let (layers, rejected) = load_with(user, home, keeper)?;
    let mut policy =
        Policy::from_layers(layers).map_err(|e| LayerError::Policy(format!("{}: {e}", e.layer.as_str())))?;
    policy.alias_paths(&crate::govern::arguments::pattern_alias);
    Ok((policy, rejected))
}

/// Re-reads the config file's `[policy]` (falling back to the one the gateway started
/// with when there is no file) and every other layer.
pub fn reload(config: &Config, home: &Home, keeper: &BundleKeeper) -> Result<(Policy, Vec<LayerError>), LayerError> {
    let user = match &config.path {
        Some(path) => Config::load_or_empty(path).map_err(|e| LayerError::Policy(e.to_string()))?.policy,
        None => config.policy.clone(),
    };
    compile_with(&user, home, keeper)
}

/// The files whose changes reload the policy.
pub fn watched_files(config: &Config, home: &Home) -> Vec<PathBuf> {
    let bundle = bundle_path(home);
    let mut files = vec![managed_file(), signature_path(&bundle), bundle];
    files.extend(added_managed_file());
    files.extend(config.path.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())));
    files
}

/// Makes sure the bundle directory exists, owner-only, so it can be watched before the
/// first bundle (and tightens one an earlier version left 0755).
pub fn prepare(home: &Home) {
    let dir = bundle_dir(home);
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        let _ = builder.create(&dir);
        if let Err(e) = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)) {
            tracing::warn!("{}: cannot make it owner-only: {e}", dir.display());
        }
    }
    #[cfg(not(unix))]
    let _ = builder.create(&dir);
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_policy::BundleExpiry;

    const NOW: i64 = 1_800_000_000; // 2027-01-15

    struct It {
        kp: minisign::KeyPair,
    }

    impl It {
        fn new() -> Self {
            It { kp: minisign::KeyPair::generate_unencrypted_keypair().unwrap() }
        }
        fn settings(&self, expiry: BundleExpiry) -> countersign_policy::ManagedSettings {
            countersign_policy::ManagedSettings {
                bundle_public_key: Some(self.kp.pk.to_base64()),
                bundle_expiry: expiry,
                ..Default::default()
            }
        }
        fn bundle(&self, version: u64, expires: &str, deny: &str) -> SignedCopy {
            let document =
                format!("[bundle]\nversion = {version}\nexpires = \"{expires}\"\n[policy]\ndeny = [\"{deny}\"]\n")
                    .into_bytes();
            let sig = minisign::sign(None, &self.kp.sk, std::io::Cursor::new(&document), None, None).unwrap();
            SignedCopy { document, signature: sig.into_string() }
        }
    }

    fn files(dir: &Path) -> BundleFiles {
        std::fs::create_dir_all(dir.join("managed")).unwrap();
        BundleFiles {
            delivered: dir.join("bundle.toml"),
            home_copy: dir.join("accepted.toml"),
            managed_copy: dir.join("managed").join("last-good-bundle.toml"),
        }
    }

    fn layer(
        f: &BundleFiles,
        k: &BundleKeeper,
        s: &countersign_policy::ManagedSettings,
    ) -> (Option<u64>, Vec<String>, Vec<String>) {
        let mut rejected = Vec::new();
        let b = bundle_layer(f, k, s, NOW, &mut rejected);
        (
            b.as_ref().map(|(_, v)| *v),
            b.map(|(p, _)| p.deny).unwrap_or_default(),
            rejected.iter().map(|e| e.to_string()).collect(),
        )
    }

    #[test]
    fn the_last_good_bundle_holds_when_the_delivered_one_and_its_copies_go() {
        let dir = tempfile::tempdir().unwrap();
        let (it, f, k) = (It::new(), files(dir.path()), BundleKeeper::default());
        let s = it.settings(BundleExpiry::KeepEnforcing);
        write_copy(&f.delivered, &it.bundle(5, "2030-01-01T00:00:00Z", "mcp__gh__delete*")).unwrap();
        assert_eq!(layer(&f, &k, &s).0, Some(5));
        assert!(f.home_copy.exists() && f.managed_copy.exists(), "kept in the data folder and the managed location");
        for p in [&f.delivered, &f.home_copy] {
            std::fs::remove_file(p).unwrap();
            std::fs::remove_file(signature_path(p)).unwrap();
        }
        let (v, deny, rejected) = layer(&f, &k, &s);
        assert_eq!((v, deny), (Some(5), vec!["mcp__gh__delete*".to_string()]));
        assert!(rejected.iter().any(|r| r.contains("missing; the last good bundle (version 5)")), "{rejected:?}");
        // A fresh process (no memory) still finds it in the managed location.
        std::fs::remove_file(&f.home_copy).unwrap();
        assert_eq!(layer(&f, &BundleKeeper::default(), &s).0, Some(5));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_in_place_of_a_bundle_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let (it, f, k) = (It::new(), files(dir.path()), BundleKeeper::default());
        let s = it.settings(BundleExpiry::KeepEnforcing);
        write_copy(&f.delivered, &it.bundle(5, "2030-01-01T00:00:00Z", "mcp__a")).unwrap();
        layer(&f, &k, &s);
        std::fs::remove_file(&f.delivered).unwrap();
        let path = std::ffi::CString::new(f.delivered.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        let (v, _, rejected) = layer(&f, &k, &s);
        assert_eq!(v, Some(5));
        assert!(rejected.iter().any(|r| r.contains("not a regular file")), "{rejected:?}");
    }

    #[test]
    fn an_older_or_edited_floor_never_lowers_the_bundle_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let (it, f, k) = (It::new(), files(dir.path()), BundleKeeper::default());
        let s = it.settings(BundleExpiry::KeepEnforcing);
        write_copy(&f.delivered, &it.bundle(5, "2030-01-01T00:00:00Z", "mcp__a")).unwrap();
        layer(&f, &k, &s);
        // The floor file edited to a higher version: ignored and named, the bundle stays.
        let floor = std::fs::read_to_string(&f.home_copy).unwrap().replace("version = 5", "version = 999");
        std::fs::write(&f.home_copy, floor).unwrap();
        let (v, _, rejected) = layer(&f, &k, &s);
        assert_eq!(v, Some(5));
        assert!(rejected.iter().any(|r| r.contains("accepted.toml") && r.contains("does not verify")), "{rejected:?}");
        // The floor files deleted and an older signed bundle delivered: refused.
        for p in [&f.home_copy, &f.managed_copy] {
            std::fs::remove_file(p).unwrap();
        }
        write_copy(&f.delivered, &it.bundle(4, "2030-01-01T00:00:00Z", "mcp__nothing")).unwrap();
        let (v, deny, rejected) = layer(&f, &k, &s);
        assert_eq!((v, deny), (Some(5), vec!["mcp__a".to_string()]));
        assert!(rejected.iter().any(|r| r.contains("rollback refused")), "{rejected:?}");
        // A newer one replaces it.
        write_copy(&f.delivered, &it.bundle(6, "2030-01-01T00:00:00Z", "mcp__b")).unwrap();
        assert_eq!(layer(&f, &k, &s).0, Some(6));
        assert_eq!(k.floor(), Some(6));
    }

    #[test]
    fn an_expired_last_good_bundle_does_what_managed_policy_says_and_a_new_expired_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (it, f) = (It::new(), files(dir.path()));
        let expiring = it.bundle(5, "2027-01-15T00:00:00Z", "mcp__a");
        // Accepted while valid (an hour before), then read after its expiry.
        for (expiry, deny) in [
            (BundleExpiry::KeepEnforcing, vec!["mcp__a".to_string()]),
            (BundleExpiry::DenyGoverned, vec!["mcp__a".to_string()]),
        ] {
            let k = BundleKeeper::default();
            let s = it.settings(expiry);
            write_copy(&f.delivered, &expiring).unwrap();
            let mut rejected = Vec::new();
            assert!(bundle_layer(&f, &k, &s, 1_799_800_000, &mut rejected).is_some());
            let (v, got, rejected) = layer(&f, &k, &s);
            assert_eq!((v, got), (Some(5), deny), "{rejected:?}");
            assert!(rejected.is_empty(), "the delivered file is the last good one: {rejected:?}");
            assert!(k.in_force().unwrap().expired && k.warning().is_some());
        }
        // A bundle that arrives already expired never becomes the one in force.
        let k = BundleKeeper::default();
        let s = it.settings(BundleExpiry::KeepEnforcing);
        write_copy(&f.delivered, &it.bundle(9, "2001-01-01T00:00:00Z", "mcp__nothing")).unwrap();
        let (v, _, rejected) = layer(&f, &k, &s);
        assert_eq!(v, Some(5), "the kept copy stays");
        assert!(rejected.iter().any(|r| r.contains("expired")), "{rejected:?}");
    }
}
