//! Sign-ins that outlive their server: when a remote server is removed from the config,
//! the tokens its sign-in holds are revoked at the authorization server and removed from
//! the keychain. The remote servers a data directory had (names and URLs, never tokens)
//! are remembered in `remote-servers.json` to tell what was removed; a sign-in is revoked
//! only when it is for the URL this data directory had, so another data directory's
//! sign-in to a server of the same name is left alone.

use crate::config::{Config, Transport};
use crate::home::{write_private, Home};
use crate::shared::{PolicyEvent, Shared};
use countersign_vault::oauth::store::KeychainCredentials;
use countersign_vault::Keychain;
use std::collections::BTreeMap;
use std::sync::Arc;

const FILE: &str = "remote-servers.json";

fn remote_servers(config: &Config) -> BTreeMap<String, String> {
    config
        .servers
        .iter()
        .filter_map(|(name, s)| match &s.transport {
            Transport::Http { url, .. } => Some((name.clone(), url.clone())),
            Transport::Stdio { .. } => None,
        })
        .collect()
}

/// Revokes the sign-ins of remote servers removed since the last start, then remembers
/// the current ones. Failures are logged and audited; they never stop the gateway.
pub async fn revoke_removed(shared: Arc<Shared>, home: Home) {
    let path = home.dir().join(FILE);
    let before: BTreeMap<String, String> =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let now = remote_servers(&shared.config);
    let removed: Vec<(&String, &String)> = before.iter().filter(|(name, _)| !now.contains_key(*name)).collect();
    if !removed.is_empty() {
        match Keychain::open().await {
            Err(e) => tracing::warn!("cannot check removed servers' sign-ins: {e}"),
            Ok(keychain) => {
                for (name, url) in removed {
                    let store = KeychainCredentials::new(name, keychain);
                    match store.load_sign_in().await {
                        Ok(Some(s)) if &s.resource == url => {}
                        Ok(_) => continue,
                        Err(e) => {
                            tracing::warn!(server = %name, "cannot read the removed server's sign-in: {e}");
                            continue;
                        }
                    }
                    let (decision, reason) = match countersign_vault::oauth::sign_out(name, keychain).await {
                        Ok(out) => (
                            countersign_audit::Decision::Allow,
                            format!(
                                "server removed from the config: signed out, {} token(s) revoked{}",
                                out.revoked,
                                out.warning.map(|w| format!(" ({w})")).unwrap_or_default()
                            ),
                        ),
                        Err(e) => (
                            countersign_audit::Decision::Deny,
                            format!("server removed from the config, but signing out failed: {e}"),
                        ),
                    };
                    tracing::info!(server = %name, "{reason}");
                    shared.policy_event(PolicyEvent {
                        decision,
                        rule: "sign-out",
                        reason,
                        server: Some(name.clone()),
                        tool: None,
                    });
                }
            }
        }
    }
    if before != now {
        if let Err(e) = write_private(&path, serde_json::to_string_pretty(&now).unwrap_or_default().as_bytes()) {
            tracing::warn!("cannot remember the remote servers: {e}");
        }
    }
}
