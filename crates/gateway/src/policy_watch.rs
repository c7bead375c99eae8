//! Watches the policy files (the config, the managed file, the bundle directory) and
//! reloads the policy when one changes, a moment after the last change so a file written
//! in several steps is read once. A reload that fails keeps the policy in force and says
//! why. It never blocks a call: the new policy is swapped in whole.

use crate::policy_layers;
use crate::shared::{PolicyEvent, Shared};
use notify::{RecursiveMode, Watcher};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Starts watching; the returned watcher must be kept alive as long as the gateway runs.
pub fn start(shared: &Arc<Shared>) -> Option<notify::RecommendedWatcher> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Only the policy files themselves count: their directories also hold logs, journals
    // and other busy files.
    let files = policy_layers::watched_files(&shared.config, &shared.home);
    let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access() && e.paths.iter().any(|p| files.iter().any(|f| f == p))) {
            let _ = tx.send(());
        }
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot watch policy files, changes need a restart: {e}");
            return None;
        }
    };
    for dir in policy_layers::watched_dirs(&shared.config, &shared.home) {
        if dir.is_dir() {
            if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
                tracing::warn!("cannot watch {}: {e}", dir.display());
            }
        }
    }
    let weak: Weak<Shared> = Arc::downgrade(shared);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Let a burst of events settle, then reload once.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while rx.try_recv().is_ok() {}
            let Some(shared) = weak.upgrade() else { return };
            reload(&shared);
        }
    });
    Some(watcher)
}

fn event(decision: &'static str, rule: &'static str, reason: String) -> PolicyEvent {
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
        shared.policy_event(event("allow", "servers-reload", reason));
    }
}

/// Reloads every layer now; on failure the policy in force stays.
pub fn reload(shared: &Arc<Shared>) {
    reload_servers(shared);
    let before = shared.policy.load().version().to_string();
    match policy_layers::reload(&shared.config, &shared.home) {
        Ok((policy, rejected)) => {
            for e in rejected {
                tracing::error!("policy layer rejected, the last good one stays: {e}");
                shared.policy_event(event(
                    "deny",
                    "policy-layer",
                    format!("layer rejected, the last good one stays: {e}"),
                ));
            }
            if policy.version() != before {
                tracing::info!(from = %before, to = %policy.version(), "policy reloaded");
                let to = policy.version().to_string();
                shared.policy.store(Arc::new(policy));
                shared.policy_event(event("allow", "policy-reload", format!("policy {before} replaced by {to}")));
            }
        }
        Err(e) => {
            tracing::error!("policy not reloaded, version {before} stays in force: {e}");
            shared.policy_event(event(
                "deny",
                "policy-layer",
                format!("policy not reloaded, {before} stays in force: {e}"),
            ));
        }
    }
}
