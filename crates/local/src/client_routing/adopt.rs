//! Turns one client's server definition into a Countersign server: the name it gets in
//! Countersign's config (the same definition already there is reused; a different one
//! under the same name gets the client's name added), and which of its environment
//! values and headers are credentials bound for the keychain. Pure: it decides, the
//! caller stores. Never writes a credential anywhere.
//!
//! "The same definition" means the same by value: command, arguments, folder, every
//! environment value and header (after `$VAR` expansion), or URL. A configured value that
//! is a keychain reference is compared by the SHA-256 digest of the stored secret, which
//! the caller reads beforehand ([`Digests`]); a secret it could not read never matches.
//! Two servers that differ in any value (another data file, another token) are never
//! merged: the client would otherwise reach Countersign's server, its data and its
//! credentials. Nor are a project's server and a user's: each is reused only within its
//! own scope (the same project folder, or none).
//!
//! A credential bound for the keychain gets a name nothing holds: not a reference in the
//! config, not a name planned in this run (`API_KEY` and `api_key` are one name once
//! lower-cased), not an item the keychain holds already (another config's server may read
//! it). It is never stored over one; a name passed over is said ([`Plan::renamed`]).

use crate::config::{Config, Transport as Configured};
use crate::config_edit::NewServer;
use countersign_clients::read::{Server, Transport};
use countersign_clients::routing::countersign_name;
use countersign_clients::ClientKind;
use countersign_vault::reference::Format;
use countersign_vault::{plaintext, SecretName, SecretRef, Setting};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// SHA-256 digests of keychain secrets' values, by name: how a configured credential is
/// compared with a client's without keeping the stored value.
pub type Digests = BTreeMap<SecretName, [u8; 32]>;

/// The SHA-256 digest of a value.
pub fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// One server's place in Countersign.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Its name in Countersign's config.
    pub name: String,
    /// The definition to add, or `None` when an equal one is configured already.
    pub add: Option<NewServer>,
    /// Credentials to store first: the keychain name and the value.
    pub secrets: Vec<(SecretName, String)>,
    /// Values written in the client's file that are now in the keychain (to keep them
    /// out of the saved original): the ones stored now, or for a reused definition the
    /// ones it already holds.
    pub written: Vec<(SecretName, String)>,
    /// Keychain names passed over because they were taken: (the name it would have had,
    /// the name it gets).
    pub renamed: Vec<(SecretName, SecretName)>,
}

/// What [`plan`] weighs a client's server against.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// Countersign's config as it is.
    pub config: &'a Config,
    /// The servers already planned in this run.
    pub planned: &'a [Plan],
    /// Digests of the secrets configured servers refer to (see [`secrets_to_compare`]).
    pub digests: &'a Digests,
    /// The secret names the keychain holds: never chosen for a new item.
    pub held: &'a BTreeSet<SecretName>,
    /// The project folder of the client's file; `None` for a user's own file.
    pub project: Option<&'a Path>,
}

/// Expands `$VAR`, `${VAR}` and `${env:VAR}` (the clients' ways of reading their own
/// environment) with `lookup`; says which variable is missing. Also returns whether
/// anything was expanded.
pub fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(String, bool), String> {
    let mut out = String::new();
    let mut rest = value;
    let mut used = false;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (var, len) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').ok_or_else(|| format!("`{value}` has an unclosed `${{`"))?;
            let var = &inner[..end];
            if let Some(input) = var.strip_prefix("input:") {
                return Err(format!("it asks the client for `{input}` when it starts, which Countersign cannot do"));
            }
            (var.strip_prefix("env:").unwrap_or(var), end + 2)
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], end)
        };
        if var.is_empty() || var.starts_with(|c: char| c.is_ascii_digit()) {
            out.push('$');
            rest = after;
            continue;
        }
        let v = lookup(var).ok_or_else(|| {
            format!("it reads the environment variable {var}, which is not set here; set it and install again")
        })?;
        out.push_str(&v);
        used = true;
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok((out, used))
}

/// Whether a configured value holds what the client's (expanded) `value` says; for a
/// keychain reference, which of the client's bytes are the secret (to keep them out of
/// the saved original).
enum Match {
    No,
    Plain,
    Secret(SecretName, String),
}

fn matches(setting: &Setting, value: &str, digests: &Digests) -> Match {
    match setting {
        Setting::Plain(p) if p == value => Match::Plain,
        Setting::Plain(_) => Match::No,
        Setting::Secret(SecretRef { secret, format }) => {
            let (before, after) = format.as_ref().and_then(|f| f.as_str().split_once("{}")).unwrap_or(("", ""));
            let inner = value.strip_prefix(before).and_then(|v| v.strip_suffix(after));
            match (inner, digests.get(secret)) {
                (Some(inner), Some(d)) if digest(inner) == *d => Match::Secret(secret.clone(), inner.to_string()),
                _ => Match::No,
            }
        }
    }
}

/// When `configured` is `server`'s definition by value, the client's values that are
/// stored keychain secrets (name, the value as the client's file writes it).
fn same_definition(
    configured: &Configured,
    server: &Server,
    digests: &Digests,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<Vec<(SecretName, String)>> {
    let (settings, values) = match (configured, &server.transport) {
        (Configured::Stdio { command, args, env, cwd }, Transport::Stdio { command: c, args: a }) => {
            let same_cwd = cwd.as_ref().map(|p| p.to_string_lossy().into_owned()) == server.cwd;
            if command != c || args != a || !same_cwd {
                return None;
            }
            (env, &server.env)
        }
        (Configured::Http { url, headers, .. }, Transport::Remote { url: u }) if url == u => (headers, &server.headers),
        _ => return None,
    };
    if !settings.keys().eq(values.keys()) {
        return None;
    }
    let mut secrets = Vec::new();
    for (setting, raw) in settings.values().zip(values.values()) {
        let (value, from_env) = expand(raw, lookup).ok()?;
        match matches(setting, &value, digests) {
            Match::No => return None,
            Match::Plain => {}
            Match::Secret(name, v) if !from_env => secrets.push((name, v)),
            Match::Secret(..) => {}
        }
    }
    Some(secrets)
}

/// The names `server` from `client` may get in Countersign, in the order they are tried.
fn candidates(server: &Server, client: ClientKind) -> impl Iterator<Item = String> {
    let base = countersign_name(&server.name);
    let slug = client.slug();
    (0..100).map(move |i| match i {
        0 => base.clone(),
        1 => format!("{base}-{slug}"),
        n => format!("{base}-{slug}-{n}"),
    })
}

/// The keychain secrets whose digests [`plan`] needs to compare `server` with the
/// configured servers that could be its definition.
pub fn secrets_to_compare(config: &Config, client: ClientKind, server: &Server) -> BTreeSet<SecretName> {
    let mut out = BTreeSet::new();
    for name in candidates(server, client) {
        let Some(existing) = config.servers.get(&name) else { break };
        let settings = match &existing.transport {
            Configured::Stdio { env, .. } => env,
            Configured::Http { headers, .. } => headers,
        };
        out.extend(settings.values().filter_map(Setting::secret).map(|r| r.secret.clone()));
    }
    out
}

/// A project's stdio server as its client starts it: in the project folder (or its `cwd`
/// read from there), not wherever the gateway runs.
fn in_its_folder(server: &Server, project: Option<&Path>) -> Server {
    let mut server = server.clone();
    if let (Some(p), Transport::Stdio { .. }) = (project, &server.transport) {
        let cwd = p.join(server.cwd.as_deref().unwrap_or("")).to_string_lossy().into_owned();
        let trimmed = cwd.trim_end_matches(['/', '\\']);
        server.cwd = Some(if trimmed.is_empty() { cwd.clone() } else { trimmed.to_string() });
    }
    server
}

/// Where `server` from `client` goes in Countersign, given what is known already (the
/// config, this run's plans, the digests of configured secrets, the keychain's names, the
/// file's project).
pub fn plan(
    known: &Known<'_>,
    client: ClientKind,
    server: &Server,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, String> {
    let config = known.config;
    let planned = known.planned;
    let server = &in_its_folder(server, known.project);
    let taken = |n: &str| config.servers.contains_key(n) || planned.iter().any(|p| p.name == n && p.add.is_some());
    let mut name = None;
    for candidate in candidates(server, client) {
        if let Some(existing) = config.servers.get(&candidate) {
            let same_scope = existing.project.as_deref() == known.project;
            if let Some(written) =
                same_definition(&existing.transport, server, known.digests, lookup).filter(|_| same_scope)
            {
                return Ok(Plan { name: candidate, add: None, secrets: Vec::new(), written, renamed: Vec::new() });
            }
        }
        if !taken(&candidate) {
            name = Some(candidate);
            break;
        }
    }
    let name = name.ok_or("no free server name")?;
    let uses = config.secret_uses();
    let mut secrets: Vec<(SecretName, String)> = Vec::new();
    let mut written = Vec::new();
    let mut renamed = Vec::new();
    let mut settings = Vec::new();
    let is_header = matches!(server.transport, Transport::Remote { .. });
    let values = if is_header { &server.headers } else { &server.env };
    for (key, raw) in values {
        let (value, from_env) = expand(raw, lookup).map_err(|e| format!("`{key}`: {e}"))?;
        if !(from_env || plaintext::looks_secret(key, &value)) {
            settings.push((key.clone(), Setting::Plain(value)));
            continue;
        }
        let (format, secret) = if is_header { plaintext::split_scheme(&value) } else { (None, value.as_str()) };
        let base_name =
            plaintext::suggested_name(&name, key).ok_or_else(|| format!("`{key}`: no keychain name fits"))?;
        let secret_taken = |n: &SecretName| {
            uses.contains_key(n)
                || known.held.contains(n)
                || secrets.iter().any(|(s, _)| s == n)
                || planned.iter().flat_map(|p| &p.secrets).any(|(s, _)| s == n)
        };
        let secret_name = (1..100)
            .map(|n| base_name.numbered(n))
            .find(|n| !secret_taken(n))
            .ok_or_else(|| format!("`{key}`: no free keychain name"))?;
        if secret_name != base_name {
            renamed.push((base_name, secret_name.clone()));
        }
        if !from_env {
            written.push((secret_name.clone(), secret.to_string()));
        }
        secrets.push((secret_name.clone(), secret.to_string()));
        let format = format.map(Format::new).transpose().map_err(|e| format!("`{key}`: {e}"))?;
        settings.push((key.clone(), Setting::Secret(SecretRef { secret: secret_name, format })));
    }
    let add = match &server.transport {
        Transport::Stdio { command, args } => {
            NewServer::Stdio { command: command.clone(), args: args.clone(), env: settings, cwd: server.cwd.clone() }
        }
        Transport::Remote { url } => NewServer::Http { url: url.clone(), headers: settings },
    };
    Ok(Plan { name, add: Some(add), secrets, written, renamed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn lookup(var: &str) -> Option<String> {
        (var == "GITHUB_TOKEN").then(|| "ghp_fromtheenvironment".to_string())
    }

    const NOTHING_HELD: &BTreeSet<SecretName> = &BTreeSet::new();

    fn known<'a>(config: &'a Config, planned: &'a [Plan], digests: &'a Digests) -> Known<'a> {
        Known { config, planned, digests, held: NOTHING_HELD, project: None }
    }

    #[test]
    fn client_environment_references_are_expanded_or_refused() {
        assert_eq!(expand("Bearer $GITHUB_TOKEN", &lookup).unwrap(), ("Bearer ghp_fromtheenvironment".into(), true));
        assert_eq!(expand("${env:GITHUB_TOKEN}", &lookup).unwrap().0, "ghp_fromtheenvironment");
        assert_eq!(expand("${GITHUB_TOKEN}/x", &lookup).unwrap().0, "ghp_fromtheenvironment/x");
        assert_eq!(expand("costs $5", &lookup).unwrap(), ("costs $5".into(), false));
        assert_eq!(expand("plain", &lookup).unwrap(), ("plain".into(), false));
        assert!(expand("$NOPE", &lookup).unwrap_err().contains("NOPE"));
        assert!(expand("${input:pat}", &lookup).unwrap_err().contains("pat"));
    }

    fn stdio(name: &str, command: &str, env: &[(&str, &str)]) -> Server {
        Server {
            name: name.into(),
            transport: Transport::Stdio { command: command.into(), args: vec![] },
            enabled: true,
            project: None,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            headers: BTreeMap::new(),
            cwd: None,
        }
    }

    #[test]
    fn credentials_go_to_the_keychain_and_names_never_clash() {
        let config = Config::parse("[servers.brave]\ncommand = \"other\"\n", None).unwrap();
        let server = stdio("brave", "npx", &[("BRAVE_API_KEY", "k-123"), ("LOG", "1")]);
        let none = Digests::new();
        let p = plan(&known(&config, &[], &none), ClientKind::Windsurf, &server, &lookup).unwrap();
        assert_eq!(p.name, "brave-windsurf", "a different definition under the same name gets the client's");
        assert_eq!(p.secrets, vec![(SecretName::new("brave-windsurf-brave_api_key").unwrap(), "k-123".to_string())]);
        let Some(NewServer::Stdio { env, .. }) = &p.add else { panic!("a new stdio server") };
        assert_eq!(env[1], ("LOG".to_string(), Setting::Plain("1".into())));
        assert!(matches!(&env[0].1, Setting::Secret(_)));

        let same = stdio("brave", "other", &[]);
        let reused = plan(&known(&config, &[], &none), ClientKind::Cursor, &same, &lookup).unwrap();
        assert_eq!((reused.name.as_str(), reused.add.is_none()), ("brave", true), "the same definition is reused");
        let second = plan(&known(&config, &[p], &none), ClientKind::Windsurf, &server, &lookup).unwrap();
        assert_eq!(second.name, "brave-windsurf-2", "a name planned in this run is taken too");
    }

    #[test]
    fn a_same_named_server_with_other_values_is_not_merged() {
        let config = Config::parse(
            "[servers.memory]\ncommand = \"mcp-server-memory\"\nenv = { MEMORY_FILE_PATH = \"/srv/countersign.jsonl\" }\n\
             [servers.github]\ncommand = \"gh-mcp\"\nenv = { GITHUB_TOKEN = { secret = \"github-github_token\" } }\n\
             [servers.docs]\nurl = \"https://docs.example/mcp\"\n\
             headers = { Authorization = { secret = \"docs-authorization\", format = \"Bearer {}\" } }\n",
            None,
        )
        .unwrap();
        let none = Digests::new();
        let plan_of = |server: &Server, digests: &Digests| {
            plan(&known(&config, &[], digests), ClientKind::ClaudeDesktop, server, &lookup).unwrap()
        };

        // Same keys, another data file: its own server, with its own value.
        let other_file = stdio("memory", "mcp-server-memory", &[("MEMORY_FILE_PATH", "/home/ana/mine.jsonl")]);
        let p = plan_of(&other_file, &none);
        assert_eq!(p.name, "memory-claude-desktop");
        let Some(NewServer::Stdio { env, .. }) = &p.add else { panic!("a new stdio server") };
        assert_eq!(env[0], ("MEMORY_FILE_PATH".to_string(), Setting::Plain("/home/ana/mine.jsonl".into())));
        let same_file = stdio("memory", "mcp-server-memory", &[("MEMORY_FILE_PATH", "/srv/countersign.jsonl")]);
        assert_eq!(
            (plan_of(&same_file, &none).name.as_str(), plan_of(&same_file, &none).add.is_none()),
            ("memory", true)
        );

        // Same keys, another token: compared by the digest of what the keychain holds.
        let stored = SecretName::new("github-github_token").unwrap();
        let digests = Digests::from([
            (stored.clone(), digest("ghp_countersigns0wn")),
            (SecretName::new("docs-authorization").unwrap(), digest("docs-t0ken")),
        ]);
        let theirs = stdio("github", "gh-mcp", &[("GITHUB_TOKEN", "ghp_someoneelses")]);
        let p = plan_of(&theirs, &digests);
        assert_eq!(p.name, "github-claude-desktop", "another token is another definition");
        assert_eq!(p.secrets[0].1, "ghp_someoneelses", "its own credential goes to the keychain");
        let ours = stdio("github", "gh-mcp", &[("GITHUB_TOKEN", "ghp_countersigns0wn")]);
        let p = plan_of(&ours, &digests);
        assert_eq!((p.name.as_str(), p.add.is_none(), p.secrets.is_empty()), ("github", true, true));
        assert_eq!(p.written, vec![(stored, "ghp_countersigns0wn".to_string())], "kept out of the saved original");
        assert_eq!(plan_of(&ours, &none).name, "github-claude-desktop", "a secret not read never matches");

        // Headers too, the format taken off before the digest is compared.
        let remote = |auth: &str| Server {
            transport: Transport::Remote { url: "https://docs.example/mcp".into() },
            headers: BTreeMap::from([("Authorization".to_string(), auth.to_string())]),
            ..stdio("docs", "", &[])
        };
        assert_eq!(plan_of(&remote("Bearer docs-t0ken"), &digests).name, "docs");
        assert_eq!(plan_of(&remote("Bearer other"), &digests).name, "docs-claude-desktop");
        assert_eq!(plan_of(&remote("docs-t0ken"), &digests).name, "docs-claude-desktop");
        let wanted = secrets_to_compare(&config, ClientKind::ClaudeDesktop, &remote("x"));
        assert_eq!(wanted.into_iter().map(|n| n.to_string()).collect::<Vec<_>>(), ["docs-authorization"]);
    }

    #[test]
    fn a_keychain_name_that_is_taken_anywhere_is_never_chosen() {
        // Issue 15, item 8: `API_KEY` and `api_key` are one name once lower-cased; an item
        // the keychain holds (another config's server reads it) and a name another plan of
        // this run chose are taken too.
        let config =
            Config::parse("[servers.other]\ncommand = \"x\"\nenv = { K = { secret = \"b-api_key-3\" } }\n", None)
                .unwrap();
        let none = Digests::new();
        let held = BTreeSet::from([SecretName::new("b-api_key").unwrap()]);
        let server = stdio("b", "b-mcp", &[("API_KEY", "upper-value"), ("api_key", "lower-value")]);
        let p =
            plan(&Known { held: &held, ..known(&config, &[], &none) }, ClientKind::Cursor, &server, &lookup).unwrap();
        let names: Vec<(&str, &str)> = p.secrets.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(names, [("b-api_key-2", "upper-value"), ("b-api_key-4", "lower-value")]);
        let renamed: Vec<(&str, &str)> = p.renamed.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(renamed, [("b-api_key", "b-api_key-2"), ("b-api_key", "b-api_key-4")], "each rename is said");
        let Some(NewServer::Stdio { env, .. }) = &p.add else { panic!("a new stdio server") };
        assert!(env.iter().all(|(_, s)| matches!(s, Setting::Secret(_))), "the references name the items used");

        // Two servers of one run whose names meet once cut to 64 characters.
        let long = "a".repeat(60);
        let first = stdio(&long, "one", &[("API_KEY", "first")]);
        let second = stdio(&format!("{long}-api"), "two", &[("X", "ghp_second0123456789")]);
        let p1 = plan(&known(&config, &[], &none), ClientKind::Cursor, &first, &lookup).unwrap();
        let p2 = plan(&known(&config, std::slice::from_ref(&p1), &none), ClientKind::Cursor, &second, &lookup).unwrap();
        assert_eq!(p1.secrets[0].0.as_str(), format!("{long}-api"));
        assert_eq!(p2.secrets[0].0, p1.secrets[0].0.numbered(2), "a name another plan chose is taken");
    }

    #[test]
    fn a_projects_server_and_a_users_are_never_one_definition() {
        let config = Config::parse(
            "[servers.time]\ncommand = \"uvx\"\nargs = [\"mcp-server-time\"]\n\
             [servers.helper]\ncommand = \"sh\"\nargs = [\"run.sh\"]\ncwd = \"/home/ana/src/repo\"\n\
             project = \"/home/ana/src/repo\"\n",
            None,
        )
        .unwrap();
        let none = Digests::new();
        let repo = Path::new("/home/ana/src/repo");
        let time = Server {
            transport: Transport::Stdio { command: "uvx".into(), args: vec!["mcp-server-time".into()] },
            ..stdio("time", "", &[])
        };
        let helper = Server {
            transport: Transport::Stdio { command: "sh".into(), args: vec!["run.sh".into()] },
            ..stdio("helper", "", &[])
        };
        let from_project = Known { project: Some(repo), ..known(&config, &[], &none) };
        let p = plan(&from_project, ClientKind::ClaudeCode, &time, &lookup).unwrap();
        assert_eq!(
            (p.name.as_str(), p.add.is_some()),
            ("time-claude-code", true),
            "a user's server is not the project's"
        );
        let p = plan(&known(&config, &[], &none), ClientKind::Cursor, &helper, &lookup).unwrap();
        assert_eq!((p.name.as_str(), p.add.is_some()), ("helper-cursor", true), "nor a project's server a user's");
        let p = plan(&from_project, ClientKind::Cursor, &helper, &lookup).unwrap();
        assert_eq!((p.name.as_str(), p.add.is_none()), ("helper", true), "one project's two clients share it");
        let Some(NewServer::Stdio { cwd, .. }) = plan(&from_project, ClientKind::Cursor, &time, &lookup).unwrap().add
        else {
            panic!("a new stdio server")
        };
        assert_eq!(cwd.as_deref(), Some("/home/ana/src/repo"), "it starts in the project, as its client starts it");
        let elsewhere = Known { project: Some(Path::new("/home/ana/src/fork")), ..known(&config, &[], &none) };
        assert_eq!(plan(&elsewhere, ClientKind::Cursor, &helper, &lookup).unwrap().name, "helper-cursor");
    }
}
