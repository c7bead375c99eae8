//! `countersign clients install` and `uninstall`: routes AI clients' servers through
//! Countersign and back. Install moves each shadow server's definition into Countersign's
//! config (credentials into the keychain first), then rewrites the client's entry in the
//! client's own syntax (the stdio shim, or the loopback URL with the client's own token),
//! keeping the rest of the file byte for byte; a timestamped backup is written first and
//! the file replaced atomically. Uninstall puts each entry's original text back.
//!
//! It never writes a credential into Countersign's config, a log line or its own record;
//! the one credential a user's client file gets is that client's loopback token (the file
//! is then made readable by its owner alone, and given its own mode back at uninstall).
//! Nothing is changed for a file whose edit does not check out. It never stores over a
//! keychain item: a credential gets a name nothing holds ([`adopt`]).
//!
//! A project's own files (folders given with `--project`, such as a cloned repository)
//! are routed only for the servers the person was shown and agreed to
//! ([`Options::approved`], [`review`]); those servers are added with `project = DIR`, so
//! they serve that project's own entries and no other client's session; and the entries
//! get the stdio shim, so no token lands in the working tree.

pub mod adopt;
pub mod record;
pub mod review;

use crate::config::Config;
use crate::config_edit::{self, EditError};
use crate::home::Home;
use crate::tokens::{TokenError, TokenStore};
use countersign_clients::client::{locations, shown, Location, Scope};
use countersign_clients::edit::{self, EntryPath};
use countersign_clients::inventory::route_of;
use countersign_clients::read::Transport;
use countersign_clients::rewrite;
use countersign_clients::routing::{restart_needed, via, via_at, Delivery, Via};
use countersign_clients::{apply, ClientKind, Env, Route};
use countersign_policy::{Policy, ServerOrigin};
use countersign_vault::{Keychain, Secret, SecretName};
use record::{placeholder, Record, RoutedEntry};
use review::ProjectServer;
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error(transparent)]
    Record(#[from] record::RecordError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// What install routes.
#[derive(Debug, Clone)]
pub struct Options {
    /// The clients to route; empty for every client found.
    pub clients: Vec<ClientKind>,
    /// Project folders whose own files (`.mcp.json`, `.cursor/mcp.json`…) are routed too.
    pub projects: Vec<PathBuf>,
    /// The `countersign` program the shim entries start (an absolute path).
    pub program: String,
    /// Where the gateway listens; without a fixed port every client gets the shim.
    pub gateway: Option<SocketAddr>,
    /// The projects' servers the person was shown ([`review::project_servers`]) and
    /// agreed to. A project's server not here, or changed since it was shown, is left as
    /// it is.
    pub approved: Vec<ProjectServer>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Moved {
    /// The name in the client's file.
    pub name: String,
    /// The Countersign server it now reaches.
    pub server: String,
    /// `shim` or `http`.
    pub via: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// One client file's outcome.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FileOutcome {
    pub client: ClientKind,
    pub client_name: &'static str,
    pub file: String,
    pub changed: Vec<Moved>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<Vec<Skipped>>", optional))]
    pub skipped: Vec<Skipped>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub backup: Option<String>,
    /// What to do for the client to notice, when it does not watch its file.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub restart: Option<&'static str>,
    /// Remote servers now reached through Countersign: sign in once with
    /// `countersign auth login NAME` if they ask for it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<Vec<String>>", optional))]
    pub sign_in: Vec<String>,
    /// Keychain names that were taken (by another reference or an item already there,
    /// left as they were), and the names the credentials got instead.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "ts", ts(as = "Option<Vec<RenamedSecret>>", optional))]
    pub renamed_secrets: Vec<RenamedSecret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RenamedSecret {
    /// The name it would have had, which something else holds.
    pub taken: String,
    /// The name it was stored under, which the config now refers to.
    pub stored_as: String,
}

impl FileOutcome {
    fn new(location: &Location, env: &Env) -> Self {
        FileOutcome {
            client: location.client,
            client_name: location.client.name(),
            file: shown(&location.path, &env.home),
            changed: Vec::new(),
            skipped: Vec::new(),
            backup: None,
            restart: None,
            sign_in: Vec::new(),
            renamed_secrets: Vec::new(),
            error: None,
        }
    }
}

/// The token name a client routed over HTTP uses (`client-cursor`).
pub fn token_name(client: ClientKind) -> String {
    format!("client-{}", client.slug())
}

fn project_of(location: &Location) -> Option<PathBuf> {
    match &location.scope {
        Scope::Project(p) => Some(p.clone()),
        Scope::User => None,
    }
}

fn origin_of(t: &Transport) -> ServerOrigin {
    match t {
        Transport::Stdio { command, args } => ServerOrigin::Command { command: command.clone(), args: args.clone() },
        Transport::Remote { url } => ServerOrigin::Url(url.clone()),
    }
}

fn stamp() -> String {
    apply::stamp(time::OffsetDateTime::now_utc())
}

/// Routes the chosen clients' shadow servers through Countersign. `lookup` reads the
/// environment (for `$VAR` references in the clients' files).
pub async fn install(
    home: &Home,
    config_path: &Path,
    env: &Env,
    policy: &Policy,
    options: &Options,
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Vec<FileOutcome>, RoutingError> {
    let mut record = Record::load(home)?;
    let mut out = Vec::new();
    let mut keychain: Option<Keychain> = None;
    let mut held: Option<BTreeSet<SecretName>> = None;
    for location in locations(env, &options.projects) {
        if !options.clients.is_empty() && !options.clients.contains(&location.client) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&location.path) else { continue };
        let mut outcome = FileOutcome::new(&location, env);
        if let Err(e) = install_file(
            home,
            config_path,
            &location,
            &text,
            policy,
            options,
            lookup,
            &mut record,
            &mut keychain,
            &mut held,
            &mut outcome,
        )
        .await
        {
            outcome.error = Some(e);
        }
        out.push(outcome);
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
async fn install_file(
    home: &Home,
    config_path: &Path,
    location: &Location,
    text: &str,
    policy: &Policy,
    options: &Options,
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
    record: &mut Record,
    keychain: &mut Option<Keychain>,
    held: &mut Option<BTreeSet<SecretName>>,
    outcome: &mut FileOutcome,
) -> Result<(), String> {
    let servers = rewrite::servers(location, text).map_err(|e| e.to_string())?;
    let config = Config::load_or_empty(config_path).map_err(|e| e.to_string())?;
    // A project's file gets the shim: no token in a working tree.
    let http = via_at(location) == Via::Http && options.gateway.is_some_and(|a| a.port() != 0);
    let project = project_of(location);
    let mut plans: Vec<adopt::Plan> = Vec::new();
    let mut steps: Vec<(EntryPath, Delivery)> = Vec::new();
    let mut token: Option<String> = None;
    let mut digests = adopt::Digests::new();
    for server in servers.iter().filter(|s| route_of(s, options.gateway) == Route::Shadow) {
        let skip = |reason: String| Skipped { name: server.name.clone(), reason };
        if let Some(review) = ProjectServer::of(location, server) {
            if !options.approved.contains(&review) {
                let reason = "a project's server is routed only once you have seen what it runs and agreed \
                              (or it changed since you were shown it); it stays as it is";
                outcome.skipped.push(skip(reason.into()));
                continue;
            }
        }
        let entry = EntryPath::from(server);
        read_digests(&adopt::secrets_to_compare(&config, location.client, server), keychain, &mut digests).await;
        if held.is_none() && !(server.env.is_empty() && server.headers.is_empty()) {
            *held = Some(held_secrets(keychain).await);
        }
        let empty = BTreeSet::new();
        let known = adopt::Known {
            config: &config,
            planned: &plans,
            digests: &digests,
            held: held.as_ref().unwrap_or(&empty),
            project: project.as_deref(),
        };
        let plan = match adopt::plan(&known, location.client, server, lookup) {
            Ok(p) => p,
            Err(reason) => {
                outcome.skipped.push(skip(reason));
                continue;
            }
        };
        if let Some(why) = policy.server_blocked(&plan.name, &origin_of(&server.transport)) {
            outcome.skipped.push(skip(format!("{why}; it stays as it is")));
            continue;
        }
        // The saved original must not hold the credential: each one written in the file
        // must be found there verbatim to be replaced by its placeholder.
        let original = edit::original(location, text, &entry).map_err(|e| e.to_string())?;
        if plan.written.iter().any(|(_, v)| !original.contains(v.as_str())) {
            outcome.skipped.push(skip("a credential in it is written with escapes; move it by hand".into()));
            continue;
        }
        let delivery = if http {
            if token.is_none() {
                let t = TokenStore::kept_token(home, &token_name(location.client), None).await;
                token = Some(t.map_err(|e: TokenError| e.to_string())?);
            }
            let addr = options.gateway.map(|a| a.to_string()).unwrap_or_default();
            Delivery::Http { url: format!("http://{addr}/mcp/{}", plan.name), token: token.clone().unwrap_or_default() }
        } else {
            let home = home.dir().display().to_string();
            Delivery::Shim { program: options.program.clone(), server: plan.name.clone(), home }
        };
        outcome.changed.push(Moved {
            name: server.name.clone(),
            server: plan.name.clone(),
            via: if http { "http" } else { "shim" },
        });
        if matches!(server.transport, Transport::Remote { .. }) {
            outcome.sign_in.push(plan.name.clone());
        }
        outcome.renamed_secrets.extend(
            plan.renamed
                .iter()
                .map(|(taken, used)| RenamedSecret { taken: taken.to_string(), stored_as: used.to_string() }),
        );
        steps.push((entry, delivery));
        plans.push(plan);
    }
    if steps.is_empty() {
        return Ok(());
    }
    // Check the whole edit before anything is stored.
    let (edited, routed) = rewrite::route(location, text, &steps).map_err(|e| e.to_string())?;
    for plan in &plans {
        if !plan.secrets.is_empty() && keychain.is_none() {
            *keychain = Some(Keychain::open().await.map_err(|e| format!("the keychain is not available: {e}"))?);
        }
        for (name, value) in &plan.secrets {
            if let Some(k) = keychain.as_ref() {
                // Never over an item that is there: one that appeared since the names
                // were chosen stops the install of this file.
                let account = countersign_vault::Account::Secret(name.clone());
                k.create(&account, &Secret::new(value.clone())).await.map_err(|e| e.to_string())?;
            }
        }
        if let Some(add) = &plan.add {
            let note =
                format!("added by `countersign clients install` from {} ({})", location.client.name(), outcome.file);
            config_edit::add_server(config_path, &plan.name, add, project.as_deref(), &note)
                .map_err(|e: EditError| e.to_string())?;
        }
    }
    let backup = apply::backup(&location.path, &home.dir().join("client-backups"), location.client.slug(), &stamp())
        .map_err(|e| e.to_string())?;
    let at = countersign_audit::now_rfc3339();
    // The mode from before the first install that changed this file, kept for uninstall.
    let mode = record.in_file(&location.path).iter().find_map(|e| e.mode).or_else(|| apply::mode(&location.path));
    for (r, plan) in routed.iter().zip(&plans) {
        let mut original = r.original.clone();
        for (name, value) in &plan.written {
            original = original.replace(value.as_str(), &placeholder(name.as_str()));
        }
        record.entries.push(RoutedEntry {
            client: location.client,
            file: location.path.clone(),
            project: project_of(location),
            entry: r.entry.clone(),
            original,
            server: plan.name.clone(),
            added_server: plan.add.is_some(),
            secrets: secret_names(plan),
            mode,
            at: at.clone(),
        });
    }
    record.save(home).map_err(|e| e.to_string())?;
    let perms = if http { apply::Perms::OwnerOnly } else { apply::Perms::Keep };
    apply::write_atomic(&location.path, &edited, perms).map_err(|e| e.to_string())?;
    outcome.backup = Some(backup.display().to_string());
    outcome.restart = restart_needed(location.client);
    Ok(())
}

/// The keychain secrets an entry's saved original refers to: the ones install stored,
/// and those a reused definition already held.
fn secret_names(plan: &adopt::Plan) -> Vec<String> {
    let mut names: Vec<String> = plan.secrets.iter().chain(&plan.written).map(|(n, _)| n.to_string()).collect();
    names.sort();
    names.dedup();
    names
}

/// The secret names the keychain holds (none when it cannot be listed: storing then
/// still refuses a name that is there, see [`Keychain::create`]).
async fn held_secrets(keychain: &mut Option<Keychain>) -> BTreeSet<SecretName> {
    if keychain.is_none() {
        *keychain = Keychain::open().await.ok();
    }
    let Some(k) = keychain.as_ref() else { return BTreeSet::new() };
    k.accounts()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| match a {
            countersign_vault::Account::Secret(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// Adds to `digests` the SHA-256 of each secret in `names` not there yet. A secret that
/// cannot be read (no keychain, missing) gets no digest, so nothing matches it.
async fn read_digests(
    names: &std::collections::BTreeSet<SecretName>,
    keychain: &mut Option<Keychain>,
    digests: &mut adopt::Digests,
) {
    for name in names {
        if digests.contains_key(name) {
            continue;
        }
        if keychain.is_none() {
            *keychain = Keychain::open().await.ok();
        }
        let Some(k) = keychain.as_ref() else { return };
        if let Ok(value) = k.secret(name).await {
            digests.insert(name.clone(), adopt::digest(value.expose()));
        }
    }
}

/// Puts the chosen clients' routed entries back as they were before install (all
/// clients when `clients` is empty), and removes what install added to Countersign when
/// nothing else uses it.
pub async fn uninstall(
    home: &Home,
    config_path: &Path,
    env: &Env,
    clients: &[ClientKind],
) -> Result<Vec<FileOutcome>, RoutingError> {
    let mut record = Record::load(home)?;
    let chosen: Vec<RoutedEntry> =
        record.entries.iter().filter(|e| clients.is_empty() || clients.contains(&e.client)).cloned().collect();
    let mut files: Vec<(PathBuf, Option<PathBuf>)> =
        chosen.iter().map(|e| (e.file.clone(), e.project.clone())).collect();
    files.dedup();
    let mut out = Vec::new();
    let mut keychain: Option<Keychain> = None;
    for (file, project) in files {
        let projects: Vec<PathBuf> = project.into_iter().collect();
        let Some(location) = locations(env, &projects).into_iter().find(|l| l.path == file) else { continue };
        let mut outcome = FileOutcome::new(&location, env);
        let entries = record.in_file(&file);
        match uninstall_file(home, &location, &entries, &mut keychain, &mut outcome).await {
            Ok(done) => record.entries.retain(|e| !(e.file == file && done.iter().any(|d| d.entry == e.entry))),
            Err(e) => outcome.error = Some(e),
        }
        out.push(outcome);
    }
    record.save(home)?;
    // What install added and nothing routed reaches any more goes too.
    for e in chosen.iter().filter(|e| e.added_server && !record.server_in_use(&e.server)) {
        if record.entries.iter().any(|r| r.file == e.file && r.entry == e.entry) {
            continue;
        }
        let _ = config_edit::remove_server(config_path, &e.server);
        let in_use = Config::load_or_empty(config_path)?.secret_uses();
        let unused: Vec<SecretName> =
            e.secrets.iter().filter_map(|s| SecretName::new(s).ok()).filter(|n| !in_use.contains_key(n)).collect();
        if !unused.is_empty() && keychain.is_none() {
            keychain = Keychain::open().await.ok();
        }
        for name in unused {
            if let Some(k) = keychain.as_ref() {
                let _ = k.delete(&countersign_vault::Account::Secret(name)).await;
            }
        }
    }
    for client in ClientKind::ALL {
        let routed_here = chosen.iter().any(|e| e.client == client && e.project.is_none());
        let still = record.entries.iter().any(|e| e.client == client && e.project.is_none());
        if routed_here && !still && via(client) == Via::Http {
            let _ = TokenStore::forget_kept_token(home, &token_name(client)).await;
        }
    }
    // A project nothing is routed from any more: its token goes too.
    let mut projects: Vec<&PathBuf> = chosen.iter().filter_map(|e| e.project.as_ref()).collect();
    projects.dedup();
    for p in projects {
        if !record.entries.iter().any(|e| e.project.as_ref() == Some(p)) {
            let _ = TokenStore::forget_kept_token(home, &crate::tokens::project_token_name(p)).await;
        }
    }
    Ok(out)
}

/// Restores one file; returns the entries dealt with (restored, or found changed by hand
/// and left alone).
async fn uninstall_file(
    home: &Home,
    location: &Location,
    entries: &[RoutedEntry],
    keychain: &mut Option<Keychain>,
    outcome: &mut FileOutcome,
) -> Result<Vec<RoutedEntry>, String> {
    let text = match std::fs::read_to_string(&location.path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(entries.to_vec()),
        Err(e) => return Err(format!("{}: {e}", location.path.display())),
    };
    let servers = rewrite::servers(location, &text).map_err(|e| e.to_string())?;
    let mut restore = Vec::new();
    let mut done = Vec::new();
    for e in entries {
        let now = servers.iter().find(|s| EntryPath::from(*s) == e.entry);
        let still_ours = now.is_some_and(|s| match &s.transport {
            Transport::Stdio { args, .. } => args.get(1) == Some(&e.server) && route_of(s, None) == Route::Routed,
            Transport::Remote { url } => url.ends_with(&format!("/mcp/{}", e.server)),
        });
        if !still_ours {
            outcome
                .skipped
                .push(Skipped { name: e.entry.name.clone(), reason: "changed since install; left as it is".into() });
            done.push(e.clone());
            continue;
        }
        let mut original = e.original.clone();
        for name in e.secrets.iter().filter_map(|s| SecretName::new(s).ok()) {
            let mark = placeholder(name.as_str());
            if !original.contains(&mark) {
                continue;
            }
            if keychain.is_none() {
                *keychain = Some(Keychain::open().await.map_err(|e| format!("the keychain is not available: {e}"))?);
            }
            let Some(k) = keychain.as_ref() else { continue };
            let value = k.secret(&name).await.map_err(|e| e.to_string())?;
            original = original.replace(&mark, value.expose());
        }
        restore.push(rewrite::Routed { entry: e.entry.clone(), original });
        outcome.changed.push(Moved { name: e.entry.name.clone(), server: e.server.clone(), via: "direct" });
        done.push(e.clone());
    }
    if !restore.is_empty() {
        let edited = rewrite::restore(location, &text, &restore).map_err(|e| e.to_string())?;
        let backup =
            apply::backup(&location.path, &home.dir().join("client-backups"), location.client.slug(), &stamp())
                .map_err(|e| e.to_string())?;
        // Every entry of the file is dealt with here: it gets the mode it had back.
        let perms = entries.iter().find_map(|e| e.mode).map_or(apply::Perms::Keep, apply::Perms::Mode);
        apply::write_atomic(&location.path, &edited, perms).map_err(|e| e.to_string())?;
        outcome.backup = Some(backup.display().to_string());
        outcome.restart = restart_needed(location.client);
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
