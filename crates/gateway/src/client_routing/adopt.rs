//! Turns one client's server definition into a Countersign server: the name it gets in
//! Countersign's config (the same definition already there is reused; a different one
//! under the same name gets the client's name added), and which of its environment
//! values and headers are credentials bound for the keychain. Pure: it decides, the
//! caller stores. Never writes a credential anywhere.

use crate::config::{Config, Transport as Configured};
use crate::config_edit::NewServer;
use countersign_clients::read::{Server, Transport};
use countersign_clients::routing::countersign_name;
use countersign_clients::ClientKind;
use countersign_vault::reference::Format;
use countersign_vault::{plaintext, SecretName, SecretRef, Setting};

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
    /// out of the saved original).
    pub written: Vec<(SecretName, String)>,
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

fn same_definition(configured: &Configured, server: &Server) -> bool {
    match (configured, &server.transport) {
        (Configured::Stdio { command, args, env, cwd }, Transport::Stdio { command: c, args: a, .. }) => {
            command == c
                && args == a
                && cwd.as_ref().map(|p| p.to_string_lossy().into_owned()) == server.cwd
                && env.keys().eq(server.env.keys())
        }
        (Configured::Http { url, headers, .. }, Transport::Remote { url: u }) => {
            url == u && headers.keys().eq(server.headers.keys())
        }
        _ => false,
    }
}

/// Where `server` from `client` goes in Countersign, given the config and the servers
/// already planned in this run.
pub fn plan(
    config: &Config,
    planned: &[Plan],
    client: ClientKind,
    server: &Server,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, String> {
    let base = countersign_name(&server.name);
    let taken = |n: &str| config.servers.contains_key(n) || planned.iter().any(|p| p.name == n && p.add.is_some());
    let mut name = None;
    for i in 0..100 {
        let candidate = match i {
            0 => base.clone(),
            1 => format!("{base}-{}", client.slug()),
            n => format!("{base}-{}-{n}", client.slug()),
        };
        if let Some(existing) = config.servers.get(&candidate) {
            if same_definition(&existing.transport, server) {
                return Ok(Plan { name: candidate, add: None, secrets: Vec::new(), written: Vec::new() });
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
        let secret_name = (1..100)
            .map(|n| if n == 1 { base_name.to_string() } else { format!("{base_name}-{n}") })
            .filter_map(|n| SecretName::new(&n).ok())
            .find(|n| !uses.contains_key(n) && !secrets.iter().any(|(s, _)| s == n))
            .ok_or_else(|| format!("`{key}`: no free keychain name"))?;
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
    Ok(Plan { name, add: Some(add), secrets, written })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn lookup(var: &str) -> Option<String> {
        (var == "GITHUB_TOKEN").then(|| "ghp_fromtheenvironment".to_string())
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
        let p = plan(&config, &[], ClientKind::Windsurf, &server, &lookup).unwrap();
        assert_eq!(p.name, "brave-windsurf", "a different definition under the same name gets the client's");
        assert_eq!(p.secrets, vec![(SecretName::new("brave-windsurf-brave_api_key").unwrap(), "k-123".to_string())]);
        let Some(NewServer::Stdio { env, .. }) = &p.add else { panic!("a new stdio server") };
        assert_eq!(env[1], ("LOG".to_string(), Setting::Plain("1".into())));
        assert!(matches!(&env[0].1, Setting::Secret(_)));

        let same = stdio("brave", "other", &[]);
        let reused = plan(&config, &[], ClientKind::Cursor, &same, &lookup).unwrap();
        assert_eq!((reused.name.as_str(), reused.add.is_none()), ("brave", true), "the same definition is reused");
        let second = plan(&config, &[p], ClientKind::Windsurf, &server, &lookup).unwrap();
        assert_eq!(second.name, "brave-windsurf-2", "a name planned in this run is taken too");
    }
}
