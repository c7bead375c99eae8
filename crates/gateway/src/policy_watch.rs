//! Watches the policy files (the config, the managed file, the delivered bundle) and
//! reloads the policy when one changes, a moment after the last change so a file written
//! in several steps is read once; and reloads it when the bundle in force expires. A
//! reload that fails keeps the policy in force and says why. It never blocks a call: the
//! new policy is swapped in whole.
//!
//! It watches the files themselves, not the folders they sit in (a folder also holds
//! logs, journals and other busy files, whose every write would wake the watcher): a file
//! that does not exist yet is waited for by watching its folder until it appears, and
//! every watch is set again after each change, since an editor or an atomic write
//! replaces the file (a new inode) rather than writing into it.

use crate::policy_layers;
use crate::shared::{PolicyEvent, Shared};
use notify::{RecursiveMode, Watcher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The watcher and what it watches now; dropping it stops watching.
pub struct PolicyWatch {
    inner: Arc<Mutex<Armed>>,
}

struct Armed {
    watcher: notify::RecommendedWatcher,
    files: Vec<PathBuf>,
    watching: Vec<PathBuf>,
}

impl Armed {
    /// Watches each file that exists, and the folder of each that does not.
    fn arm(&mut self) {
        for path in self.watching.drain(..) {
            let _ = self.watcher.unwatch(&path);
        }
        let mut targets: Vec<PathBuf> = Vec::new();
        for file in &self.files {
            let target = if file.is_file() {
                Some(file.clone())
            } else {
                file.parent().filter(|d| d.is_dir()).map(|d| d.to_path_buf())
            };
            if let Some(t) = target.filter(|t| !targets.contains(t)) {
                targets.push(t);
            }
        }
        for target in targets {
            match self.watcher.watch(&target, RecursiveMode::NonRecursive) {
                Ok(()) => self.watching.push(target),
                Err(e) => tracing::warn!("cannot watch {}: {e}", target.display()),
            }
        }
    }
}

impl PolicyWatch {
    /// What is watched now (for tests).
    pub fn watching(&self) -> Vec<PathBuf> {
        self.inner.lock().map(|a| a.watching.clone()).unwrap_or_default()
    }
}

/// Starts watching; the returned watch must be kept alive as long as the gateway runs.
pub fn start(shared: &Arc<Shared>) -> Option<PolicyWatch> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let files = policy_layers::watched_files(&shared.config, &shared.home);
    let matching = files.clone();
    let watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access() && e.paths.iter().any(|p| matching.iter().any(|f| f == p))) {
            let _ = tx.send(());
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot watch policy files, changes need a restart: {e}");
            return None;
        }
    };
    let mut armed = Armed { watcher, files, watching: Vec::new() };
    armed.arm();
    let inner = Arc::new(Mutex::new(armed));
    let rearm = Arc::downgrade(&inner);
    let weak: Weak<Shared> = Arc::downgrade(shared);
    tokio::spawn(async move {
        loop {
            let expiry = weak.upgrade().and_then(|s| s.bundles.next_expiry());
            // A second past the expiry, so the bundle reads as expired; looked at again
            // at least hourly.
            let wait = expiry.map(|at| (at - crate::clock::now_unix() + 1).clamp(0, 3600) as u64);
            let until_expiry = async {
                match wait {
                    Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = rx.recv() => {
                    if changed.is_none() {
                        return;
                    }
                    // Let a burst of events settle, then reload once.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    while rx.try_recv().is_ok() {}
                    match rearm.upgrade() {
                        Some(armed) => armed.lock().unwrap_or_else(|p| p.into_inner()).arm(),
                        None => return,
                    }
                }
                _ = until_expiry => {
                    if expiry.is_some_and(|at| at > crate::clock::now_unix()) {
                        continue;
                    }
                }
            }
            let Some(shared) = weak.upgrade() else { return };
            reload(&shared);
        }
    });
    Some(PolicyWatch { inner })
}

fn event(decision: countersign_audit::Decision, rule: &'static str, reason: String) -> PolicyEvent {
    PolicyEvent { decision, rule, reason, server: None, tool: None }
}

/// Takes up the servers the config file now lists (`countersign clients install` adds
/// some while the gateway runs); a file that does not load keeps the servers in force.
fn reload_servers(shared: &Arc<Shared>) {
    let Some(path) = &shared.config.path else { return };
    let Ok(config) = crate::config::Config::load_or_empty(path) else { return };
    if **shared.servers.load() != config.servers {
        let names: Vec<&String> = config.servers.keys().collect();
        let reason = format!("servers now configured: {names:?}");
        tracing::info!("{reason}");
        shared.servers.store(Arc::new(config.servers.clone()));
        shared.policy_event(event(countersign_audit::Decision::Allow, "servers-reload", reason));
    }
}

/// Records, once per bundle version, that the bundle in force has expired: the journal
/// record reaches the hub, which raises an alert; the status and tray show the warning.
pub fn announce_expiry(shared: &Arc<Shared>) {
    if let Some(news) = shared.bundles.expiry_news() {
        tracing::warn!("{news}");
        shared.policy_event(event(countersign_audit::Decision::Deny, countersign_policy::EXPIRED_RULE, news));
    }
}

/// Reloads every layer now; on failure the policy in force stays.
pub fn reload(shared: &Arc<Shared>) {
    reload_servers(shared);
    shared.reload_who();
    let before = shared.policy.load().version().to_string();
    match policy_layers::reload(&shared.config, &shared.home, &shared.bundles) {
        Ok((policy, rejected)) => {
            for e in rejected {
                tracing::error!("policy layer rejected, the last good one stays: {e}");
                shared.policy_event(event(
                    countersign_audit::Decision::Deny,
                    "policy-layer",
                    format!("layer rejected, the last good one stays: {e}"),
                ));
            }
            if policy.version() != before {
                tracing::info!(from = %before, to = %policy.version(), "policy reloaded");
                let to = policy.version().to_string();
                shared.policy.store(Arc::new(policy));
                shared.policy_event(event(
                    countersign_audit::Decision::Allow,
                    "policy-reload",
                    format!("policy {before} replaced by {to}"),
                ));
            }
            announce_expiry(shared);
        }
        Err(e) => {
            tracing::error!("policy not reloaded, version {before} stays in force: {e}");
            shared.policy_event(event(
                countersign_audit::Decision::Deny,
                "policy-layer",
                format!("policy not reloaded, {before} stays in force: {e}"),
            ));
        }
    }
}
