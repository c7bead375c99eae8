//! The TOML configuration: gateway settings, limits, upstream servers and policy rules.
//!
//! Loading either yields a complete, checked configuration or an error that names the
//! file, the line and the field. It never guesses: an unknown key, a server with both
//! `command` and `url`, a non-loopback listen address or a malformed rule stops start-up.

use countersign_policy::{
    ClassDefaults, ClassOverride, GrantSettings, Policy, PolicySettings, Rule, ServerInfo, ServerOrigin, ServerScope,
};
use countersign_vault::{SecretName, Setting};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub const DEFAULT_PORT: u16 = 47800;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {field}: {message}")]
    Invalid { path: PathBuf, line: usize, column: usize, field: String, message: String },
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: Option<PathBuf>,
    pub gateway: GatewaySettings,
    pub limits: Limits,
    pub audit: AuditSettings,
    pub sync: SyncSettings,
    pub servers: BTreeMap<String, ServerConfig>,
    /// The user's own policy layer (`[policy]`).
    pub policy: PolicySettings,
}

/// How long a prompt stays up by default: long enough for a person away from the desk.
pub const DEFAULT_APPROVAL_TIMEOUT_SECS: u64 = 15 * 60;
/// When a waiting call is answered "pending" by default: before the 60 s request limits
/// common MCP clients have.
pub const DEFAULT_APPROVAL_PENDING_AFTER_SECS: u64 = 45;

#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub listen: SocketAddr,
    /// How long a prompt stays up for a person; no answer by then denies the call.
    pub approval_timeout_secs: u64,
    /// When a call that waits for a person is answered "pending" (a tool error naming the
    /// approver and the request; the same call retried after the approval goes through),
    /// so a client's own request limit (60 s in the TypeScript SDK and the Inspector)
    /// never ends it first. `None`: held until the approval or its timeout. A call the
    /// client runs as a task is never answered pending.
    pub approval_pending_after: Option<std::time::Duration>,
    /// Browser origins allowed to call the gateway. Empty: any request with an Origin is refused.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest HTTP request body accepted from a client.
    pub max_body_bytes: usize,
    /// Longest line accepted from a stdio upstream (or the shim's stdin).
    pub max_line_bytes: usize,
    /// Deepest JSON nesting accepted in a client message.
    pub max_depth: usize,
    /// How long a forwarded request may wait for its upstream answer.
    pub request_timeout_secs: u64,
    /// Most client sessions held at once.
    pub max_sessions: usize,
    /// Most sessions one client token may hold at once (each may run its own upstream
    /// processes), so one client cannot take every slot.
    pub max_sessions_per_token: usize,
    /// How long a client may take to send a request's headers, and its body.
    pub read_timeout_secs: u64,
    /// Most client connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// A session with no request for this long is closed and its upstreams stopped.
    pub session_idle_secs: u64,
    /// Most processes of one stdio server running at once (each session starts its own).
    /// At the cap, an idle session running one is closed to make room (least recently
    /// used first); when every one has a call under way, the new start is refused.
    pub max_processes_per_server: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 * 1024 * 1024,
            max_line_bytes: 16 * 1024 * 1024,
            max_depth: 64,
            request_timeout_secs: 300,
            max_sessions: 1024,
            max_sessions_per_token: 64,
            read_timeout_secs: 10,
            max_connections: 1024,
            session_idle_secs: 30 * 60,
            max_processes_per_server: 32,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    pub synchronous: countersign_audit::Synchronous,
}

/// How the journal is sent to the hub (`[sync]`), once this device is enrolled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// Most records in one upload.
    pub batch_size: usize,
    /// How often pending records are sent.
    pub interval_secs: u64,
    /// The longest wait between retries while the hub cannot be reached.
    pub max_backoff_secs: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings { batch_size: 500, interval_secs: 10, max_backoff_secs: 300 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Environment values are plain or references to keychain secrets.
    Stdio { command: String, args: Vec<String>, env: BTreeMap<String, Setting>, cwd: Option<PathBuf> },
    /// Header values are plain or references to keychain secrets; `oauth` tunes the sign-in
    /// the gateway does when the server asks for one.
    Http { url: String, headers: BTreeMap<String, Setting>, oauth: OAuthSettings },
}

/// How the gateway signs in to a remote server that asks for OAuth (`[servers.X.oauth]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    /// Scopes to ask for; empty lets the server's metadata decide.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// A client id registered with the authorization server beforehand; without one the
    /// gateway registers itself (client ID metadata document or dynamic registration).
    /// With `enterprise`, the gateway's client at the server's authorization server
    /// (default: its client id at the identity provider).
    pub client_id: Option<String>,
    /// Reach the server with the person's sign-in to the company's identity provider
    /// (`[identity_provider]`): enterprise-managed authorization (ID-JAG), no consent
    /// screen per server.
    #[serde(default)]
    pub enterprise: bool,
    /// With `enterprise`: the client secret at the server's authorization server, from
    /// the keychain (`{ secret = "name" }`).
    pub client_secret: Option<Setting>,
    /// With `enterprise`: the issuer of the authorization server the company approved for
    /// this server; one the server points elsewhere is refused.
    pub authorization_server: Option<String>,
    /// `[identity_provider]`, filled in when `enterprise` is set.
    #[serde(skip)]
    pub identity_provider: Option<IdentityProviderSettings>,
}

/// The company's identity provider (`[identity_provider]`): the person signs in to it once
/// (`countersign auth login SERVER`), and servers with `oauth = { enterprise = true }` are
/// reached with that sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderSettings {
    /// Its issuer URL (`https://…`; `http://` only on this machine).
    pub issuer: String,
    /// The gateway's client id there.
    pub client_id: String,
    /// Its client secret, from the keychain (`{ secret = "name" }`).
    pub client_secret: Option<Setting>,
    /// Scopes besides `openid` (default `email`).
    #[serde(default = "default_idp_scopes")]
    pub scopes: Vec<String>,
}

fn default_idp_scopes() -> Vec<String> {
    vec!["email".into()]
}

/// A credential written in plain text in the config (found to offer moving it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaintextSecret {
    pub server: String,
    /// `env` or `headers`.
    pub table: &'static str,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub transport: Transport,
    /// What the policy engine knows of this server (its name, how it is started or
    /// reached, whether its annotations are trusted, its catalog entry, its scope), built
    /// once when the config is read rather than on every call.
    pub info: ServerInfo,
    /// The project folder this server was added from (`project = DIR`): it serves only
    /// that project's own entries, which connect with the project's client token
    /// ([`crate::tokens::project_token_name`]).
    pub project: Option<PathBuf>,
}

impl ServerConfig {
    fn new(name: &str, transport: Transport, trusted: bool, catalog: Option<String>, project: Option<PathBuf>) -> Self {
        let origin = match &transport {
            Transport::Stdio { command, args, .. } => {
                ServerOrigin::Command { command: command.clone(), args: args.clone() }
            }
            Transport::Http { url, .. } => ServerOrigin::Url(url.clone()),
        };
        let scope = project.as_ref().map(|p| ServerScope {
            project: p.display().to_string(),
            client_token: crate::tokens::project_token_name(p),
        });
        ServerConfig {
            transport,
            info: ServerInfo { name: name.to_string(), origin, trusted, catalog, scope },
            project,
        }
    }

    /// Whether the server's tool annotations may count as grounds to allow.
    pub fn trusted(&self) -> bool {
        self.info.trusted
    }
}

// ---- raw, as written in the file ------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    gateway: RawGateway,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    audit: AuditSettings,
    #[serde(default)]
    sync: SyncSettings,
    #[serde(default)]
    servers: BTreeMap<String, Spanned<RawServer>>,
    #[serde(default)]
    policy: RawPolicy,
    identity_provider: Option<IdentityProviderSettings>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    listen: Option<Spanned<String>>,
    approval_timeout_secs: Option<Spanned<u64>>,
    approval_pending_after_secs: Option<Spanned<u64>>,
    #[serde(default)]
    allowed_origins: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, Setting>,
    cwd: Option<PathBuf>,
    url: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Setting>,
    oauth: Option<OAuthSettings>,
    #[serde(default)]
    trusted: bool,
    catalog: Option<Spanned<String>>,
    project: Option<Spanned<PathBuf>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    ask: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    defaults: ClassDefaults,
    #[serde(default)]
    classify: BTreeMap<String, Spanned<ClassOverride>>,
    grants: Option<GrantSettings>,
    /// Who answers a call that asks (`[[policy.approvers]]`).
    #[serde(default)]
    approvers: Vec<countersign_policy::ApproverRule>,
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, Some(path))
    }

    /// A configuration with no servers and default settings.
    /// The file at `path`, or, while there is none, an empty configuration that will be
    /// read from `path` once it appears (`countersign clients install` may write it).
    pub fn load_or_empty(path: &Path) -> Result<Self, ConfigError> {
        if path.exists() {
            return Self::load(path);
        }
        let mut empty = Self::empty();
        empty.path = Some(path.to_path_buf());
        Ok(empty)
    }

    pub fn empty() -> Self {
        Self::parse("", None).expect("the empty configuration is valid")
    }

    pub fn parse(text: &str, path: Option<&Path>) -> Result<Self, ConfigError> {
        let shown = path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("<config>"));
        let invalid = |span: Option<Range<usize>>, field: &str, message: String| {
            let (line, column) = span.map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Invalid { path: shown.clone(), line, column, field: field.to_string(), message }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let field = field_of_message(e.message());
            invalid(e.span(), &field, e.message().trim().to_string())
        })?;

        let listen = match &raw.gateway.listen {
            None => SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            Some(spanned) => {
                let addr: SocketAddr = spanned.get_ref().parse().map_err(|_| {
                    invalid(
                        Some(spanned.span()),
                        "gateway.listen",
                        format!("`{}` is not an address with a port, such as 127.0.0.1:47800", spanned.get_ref()),
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(invalid(
                        Some(spanned.span()),
                        "gateway.listen",
                        format!(
                            "{} is not a loopback address; Countersign listens only on 127.0.0.1 or ::1",
                            addr.ip()
                        ),
                    ));
                }
                addr
            }
        };
        let approval_timeout_secs = match &raw.gateway.approval_timeout_secs {
            None => DEFAULT_APPROVAL_TIMEOUT_SECS,
            Some(s) if *s.get_ref() == 0 || *s.get_ref() > 3600 => {
                return Err(invalid(
                    Some(s.span()),
                    "gateway.approval_timeout_secs",
                    "must be between 1 and 3600 seconds".into(),
                ))
            }
            Some(s) => *s.get_ref(),
        };
        let approval_pending_after = match &raw.gateway.approval_pending_after_secs {
            None => Some(std::time::Duration::from_secs(DEFAULT_APPROVAL_PENDING_AFTER_SECS)),
            Some(s) if *s.get_ref() == 0 => None,
            Some(s) if *s.get_ref() > 3600 => {
                return Err(invalid(
                    Some(s.span()),
                    "gateway.approval_pending_after_secs",
                    "must be at most 3600 seconds (0: never answer pending)".into(),
                ))
            }
            Some(s) => Some(std::time::Duration::from_secs(*s.get_ref())),
        };
        let limits = raw.limits;
        if limits.max_depth < 8 || limits.max_body_bytes < 1024 || limits.max_line_bytes < 1024 {
            return Err(invalid(None, "limits", "max_depth must be at least 8, byte limits at least 1024".into()));
        }
        if !(1..=10_000).contains(&raw.sync.batch_size) || raw.sync.interval_secs == 0 || raw.sync.max_backoff_secs == 0
        {
            return Err(invalid(
                None,
                "sync",
                "batch_size must be 1 to 10000; interval_secs and max_backoff_secs at least 1".into(),
            ));
        }
        if limits.session_idle_secs == 0 || limits.request_timeout_secs == 0 || limits.read_timeout_secs == 0 {
            return Err(invalid(
                None,
                "limits",
                "session_idle_secs, request_timeout_secs and read_timeout_secs must be at least 1".into(),
            ));
        }
        if limits.max_sessions_per_token == 0 || limits.max_connections < 16 {
            return Err(invalid(
                None,
                "limits",
                "max_sessions_per_token must be at least 1 and max_connections at least 16".into(),
            ));
        }
        if limits.max_processes_per_server == 0 {
            return Err(invalid(
                limit_span(text, "max_processes_per_server"),
                "limits.max_processes_per_server",
                "must be at least 1 (each session of a stdio server runs its own process)".into(),
            ));
        }

        let mut servers = BTreeMap::new();
        if let Some(idp) = &raw.identity_provider {
            if !(idp.issuer.starts_with("https://") || idp.issuer.starts_with("http://")) {
                return Err(invalid(
                    None,
                    "identity_provider.issuer",
                    format!("`{}` is not an http(s) URL", idp.issuer),
                ));
            }
            if matches!(idp.client_secret, Some(Setting::Plain(_))) {
                return Err(invalid(
                    None,
                    "identity_provider.client_secret",
                    "must come from the keychain: `{ secret = \"name\" }` (countersign secret set name)".into(),
                ));
            }
        }
        for (name, spanned) in raw.servers {
            let span = spanned.span();
            let field = format!("servers.{name}");
            check_server_name(&name).map_err(|m| invalid(Some(span.clone()), &field, m))?;
            let s = spanned.into_inner();
            let transport = match (s.command, s.url) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        Some(span),
                        &field,
                        "has both `command` and `url`; a server is one or the other".into(),
                    ))
                }
                (None, None) => {
                    return Err(invalid(
                        Some(span),
                        &field,
                        "needs `command` (a local stdio server) or `url` (a remote server)".into(),
                    ))
                }
                (Some(command), None) => {
                    if command.trim().is_empty() {
                        return Err(invalid(Some(span), &format!("{field}.command"), "is empty".into()));
                    }
                    if !s.headers.is_empty() || s.oauth.is_some() {
                        return Err(invalid(
                            Some(span),
                            &field,
                            "`headers` and `oauth` only apply to `url` servers".into(),
                        ));
                    }
                    Transport::Stdio { command, args: s.args, env: s.env, cwd: s.cwd }
                }
                (None, Some(url)) => {
                    let u = url.get_ref();
                    if !(u.starts_with("https://") || u.starts_with("http://")) {
                        return Err(invalid(
                            Some(url.span()),
                            &format!("{field}.url"),
                            format!("`{u}` is not an http(s) URL"),
                        ));
                    }
                    if !s.args.is_empty() || !s.env.is_empty() || s.cwd.is_some() {
                        return Err(invalid(
                            Some(span),
                            &field,
                            "`args`, `env` and `cwd` only apply to `command` servers".into(),
                        ));
                    }
                    if let Some(bad) =
                        s.headers.keys().find(|k| reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err())
                    {
                        return Err(invalid(
                            Some(span),
                            &format!("{field}.headers"),
                            format!("`{bad}` is not a valid header name"),
                        ));
                    }
                    let mut oauth = s.oauth.unwrap_or_default();
                    if oauth.enterprise {
                        let Some(idp) = &raw.identity_provider else {
                            return Err(invalid(
                                Some(span),
                                &format!("{field}.oauth.enterprise"),
                                "needs `[identity_provider]` (issuer, client_id): the company's IdP to sign in with"
                                    .into(),
                            ));
                        };
                        if matches!(oauth.client_secret, Some(Setting::Plain(_))) {
                            return Err(invalid(
                                Some(span),
                                &format!("{field}.oauth.client_secret"),
                                "must come from the keychain: `{ secret = \"name\" }`".into(),
                            ));
                        }
                        oauth.identity_provider = Some(idp.clone());
                    } else if oauth.client_secret.is_some() || oauth.authorization_server.is_some() {
                        return Err(invalid(
                            Some(span),
                            &format!("{field}.oauth"),
                            "`client_secret` and `authorization_server` apply with `enterprise = true` only".into(),
                        ));
                    }
                    Transport::Http { url: url.into_inner(), headers: s.headers, oauth }
                }
            };
            let catalog = match s.catalog {
                Some(c) if countersign_policy::Catalog::builtin().get(c.get_ref()).is_none() => {
                    let known: Vec<&str> =
                        countersign_policy::Catalog::builtin().entries().iter().map(|e| e.id.as_str()).collect();
                    return Err(invalid(
                        Some(c.span()),
                        &format!("{field}.catalog"),
                        format!("no catalog entry `{}` (known: {})", c.get_ref(), known.join(", ")),
                    ));
                }
                c => c.map(Spanned::into_inner),
            };
            let project = match s.project {
                Some(p) if !p.get_ref().is_absolute() => {
                    return Err(invalid(
                        Some(p.span()),
                        &format!("{field}.project"),
                        format!("`{}` is not an absolute folder path", p.get_ref().display()),
                    ))
                }
                p => p.map(Spanned::into_inner),
            };
            servers.insert(name.clone(), ServerConfig::new(&name, transport, s.trusted, catalog, project));
        }

        let mut policy = PolicySettings {
            defaults: raw.policy.defaults,
            grants: raw.policy.grants,
            approvers: raw.policy.approvers,
            ..Default::default()
        };
        for (list, raw_list, out) in [
            ("allow", &raw.policy.allow, &mut policy.allow),
            ("ask", &raw.policy.ask, &mut policy.ask),
            ("deny", &raw.policy.deny, &mut policy.deny),
        ] {
            for (i, rule) in raw_list.iter().enumerate() {
                Rule::parse(rule.get_ref())
                    .map_err(|e| invalid(Some(rule.span()), &format!("policy.{list}[{i}]"), e.to_string()))?;
                out.push(rule.get_ref().clone());
            }
        }
        for (pattern, value) in raw.policy.classify {
            Rule::parse(&pattern)
                .map_err(|e| invalid(Some(value.span()), &format!("policy.classify.\"{pattern}\""), e.to_string()))?;
            policy.classify.insert(pattern, value.into_inner());
        }
        Policy::compile(&policy)
            .map_err(|e| invalid(None, &format!("policy.{}[{}]", e.list, e.index), e.error.to_string()))?;

        Ok(Config {
            path: path.map(Path::to_path_buf),
            gateway: GatewaySettings {
                listen,
                approval_timeout_secs,
                approval_pending_after,
                allowed_origins: raw.gateway.allowed_origins,
            },
            limits,
            audit: raw.audit,
            sync: raw.sync,
            servers,
            policy,
        })
    }
}

impl Config {
    /// Every environment value and header of every server: (server, `env` or `headers`,
    /// key, value).
    fn settings(&self) -> impl Iterator<Item = (&str, &'static str, &str, &Setting)> {
        self.servers.iter().flat_map(|(server, config)| {
            let (table, settings) = match &config.transport {
                Transport::Stdio { env, .. } => ("env", env),
                Transport::Http { headers, .. } => ("headers", headers),
            };
            settings.iter().map(move |(key, value)| (server.as_str(), table, key.as_str(), value))
        })
    }

    /// Credentials written in plain text (by the name or shape of the value), which
    /// `countersign secret import` offers to move into the keychain.
    pub fn plaintext_secrets(&self) -> Vec<PlaintextSecret> {
        self.settings()
            .filter(|(_, _, key, value)| {
                matches!(value, Setting::Plain(v) if countersign_vault::plaintext::looks_secret(key, v))
            })
            .map(|(server, table, key, _)| PlaintextSecret { server: server.to_string(), table, key: key.to_string() })
            .collect()
    }

    /// Every keychain secret the config refers to, with where (`servers.X.env.KEY`).
    pub fn secret_uses(&self) -> BTreeMap<SecretName, Vec<String>> {
        let mut uses: BTreeMap<SecretName, Vec<String>> = BTreeMap::new();
        for (server, table, key, value) in self.settings() {
            if let Setting::Secret(r) = value {
                uses.entry(r.secret.clone()).or_default().push(format!("servers.{server}.{table}.{key}"));
            }
        }
        uses
    }
}

fn check_server_name(name: &str) -> Result<(), String> {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    // `mcp__a___x` could be server `a` and tool `_x`, or `a_` and `x`: a name may neither
    // start nor end with `_`, so `server__tool` splits one way only.
    if name.is_empty() || !ok_chars || name.starts_with(['-', '_']) || name.ends_with('_') || name.contains("__") {
        return Err(format!(
            "`{name}` is not a valid server name: use letters, digits, `-` and `_` (not `__`, and not at either \
             end), starting with a letter or digit"
        ));
    }
    Ok(())
}

/// Where `[limits] <key>`'s value is written, to point an error at its line. Read only
/// when that limit is refused, so the file is parsed a second time only then.
fn limit_span(text: &str, key: &str) -> Option<Range<usize>> {
    #[derive(Deserialize)]
    struct Spans {
        #[serde(default)]
        limits: BTreeMap<String, Spanned<toml::Value>>,
    }
    let spans: Spans = toml::from_str(text).ok()?;
    spans.limits.get(key).map(|v| v.span())
}

/// Picks the key named in a serde message such as "unknown field `comand`, expected ...".
fn field_of_message(message: &str) -> String {
    message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
        .map(str::to_string)
        .unwrap_or_else(|| "syntax".to_string())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, Some(Path::new("cs.toml"))).unwrap_err().to_string()
    }

    #[test]
    fn a_full_config_parses() {
        let c = Config::parse(
            r#"
[gateway]
listen = "127.0.0.1:48000"
approval_timeout_secs = 5

[servers.fs]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
env = { A = "b" }
trusted = true

[servers.remote]
url = "https://example.test/mcp"
headers = { "X-Team" = "core" }

[policy]
ask = ["mcp__fs__write_file"]
deny = ["mcp__fs__delete*"]
"#,
            None,
        )
        .unwrap();
        assert_eq!(c.gateway.listen.port(), 48000);
        assert_eq!(c.gateway.approval_timeout_secs, 5);
        assert!(c.servers["fs"].trusted());
        assert!(matches!(c.servers["remote"].transport, Transport::Http { .. }));
        assert_eq!(c.policy.deny, vec!["mcp__fs__delete*"]);
    }

    #[test]
    fn an_unknown_key_names_file_line_and_field() {
        let e = err("[servers.fs]\ncomand = \"npx\"\n");
        assert!(e.starts_with("cs.toml:2:1: comand: unknown field `comand`"), "{e}");
    }

    #[test]
    fn a_server_with_both_transports_is_refused() {
        let e = err("\n[servers.fs]\ncommand = \"a\"\nurl = \"http://127.0.0.1:1/mcp\"\n");
        assert!(e.contains("servers.fs: has both `command` and `url`"), "{e}");
        assert!(e.starts_with("cs.toml:"), "{e}");
    }

    #[test]
    fn sec_02_non_loopback_listen_is_refused() {
        let e = err("[gateway]\nlisten = \"0.0.0.0:47800\"\n");
        assert_eq!(
            e,
            "cs.toml:2:10: gateway.listen: 0.0.0.0 is not a loopback address; Countersign listens only on 127.0.0.1 or ::1"
        );
        assert!(Config::parse("[gateway]\nlisten = \"[::1]:47800\"\n", None).is_ok());
    }

    #[test]
    fn a_bad_rule_names_its_index() {
        let e = err("[policy]\ndeny = [\"mcp__a\", \"rm\"]\n");
        assert!(e.starts_with("cs.toml:2:19: policy.deny[1]: rule `rm` must start with `mcp__`"), "{e}");
    }

    #[test]
    fn bad_server_names_and_urls_are_refused() {
        assert!(err("[servers.a__b]\ncommand = \"x\"\n").contains("not a valid server name"));
        assert!(err("[servers.a_]\ncommand = \"x\"\n").contains("not a valid server name"), "mcp__a___x is one split");
        assert!(err("[servers.r]\nurl = \"file:///etc/passwd\"\n").contains("servers.r.url"));
        assert!(err("[servers.r]\n").contains("needs `command`"));
    }

    #[test]
    fn secrets_are_referenced_by_name_and_plaintext_ones_are_found() {
        let c = Config::parse(
            r#"
[servers.gh]
command = "x"
env = { GITHUB_TOKEN = { secret = "github-pat" }, LOG = "debug", OLD_TOKEN = "ghp_plain" }

[servers.remote]
url = "https://example.test/mcp"
headers = { Authorization = { secret = "remote-key", format = "Bearer {}" }, X-Api-Key = "abc" }
oauth = { scopes = ["read"] }
"#,
            None,
        )
        .unwrap();
        let uses = c.secret_uses();
        assert_eq!(uses[&SecretName::new("github-pat").unwrap()], vec!["servers.gh.env.GITHUB_TOKEN"]);
        assert_eq!(uses[&SecretName::new("remote-key").unwrap()], vec!["servers.remote.headers.Authorization"]);
        let plain: Vec<String> =
            c.plaintext_secrets().iter().map(|p| format!("{}.{}.{}", p.server, p.table, p.key)).collect();
        assert_eq!(plain, vec!["gh.env.OLD_TOKEN", "remote.headers.X-Api-Key"]);
        let Transport::Http { oauth, .. } = &c.servers["remote"].transport else { panic!() };
        assert_eq!(oauth.scopes, vec!["read"]);
    }

    #[test]
    fn an_enterprise_server_needs_the_identity_provider_and_keychain_secrets() {
        let ok = Config::parse(
            "[identity_provider]\nissuer = \"https://idp.example\"\nclient_id = \"gw\"\n\
             client_secret = { secret = \"idp\" }\n[servers.r]\nurl = \"https://r.example/mcp\"\n\
             oauth = { enterprise = true, client_secret = { secret = \"r\" } }\n",
            None,
        )
        .unwrap();
        let Transport::Http { oauth, .. } = &ok.servers["r"].transport else { panic!() };
        assert!(oauth.enterprise);
        assert_eq!(oauth.identity_provider.as_ref().map(|i| i.issuer.as_str()), Some("https://idp.example"));
        assert_eq!(oauth.identity_provider.as_ref().map(|i| i.scopes.clone()), Some(vec!["email".to_string()]));
        let e = err("[servers.r]\nurl = \"https://r.example/mcp\"\noauth = { enterprise = true }\n");
        assert!(e.contains("servers.r.oauth.enterprise") && e.contains("[identity_provider]"), "{e}");
        let e = err("[identity_provider]\nissuer = \"https://i\"\nclient_id = \"g\"\nclient_secret = \"plain\"\n");
        assert!(e.contains("identity_provider.client_secret") && e.contains("keychain"), "{e}");
        let e = err("[servers.r]\nurl = \"https://r.example/mcp\"\noauth = { client_secret = { secret = \"r\" } }\n");
        assert!(e.contains("apply with `enterprise = true` only"), "{e}");
    }

    #[test]
    fn a_bad_secret_reference_names_its_field() {
        let e = err("[servers.gh]\ncommand = \"x\"\nenv = { T = { secret = \"$(id)\" } }\n");
        assert!(e.contains("not a secret name"), "{e}");
        assert!(e.starts_with("cs.toml:3:"), "{e}");
        let e = err("[servers.gh]\ncommand = \"x\"\noauth = {}\n");
        assert!(e.contains("only apply to `url` servers"), "{e}");
    }

    #[test]
    fn the_process_cap_defaults_to_32_and_zero_names_its_line() {
        assert_eq!(Config::empty().limits.max_processes_per_server, 32);
        let c = Config::parse("[limits]\nmax_processes_per_server = 8\n", None).unwrap();
        assert_eq!(c.limits.max_processes_per_server, 8);
        let e = err("[gateway]\n\n[limits]\nmax_sessions = 10\nmax_processes_per_server = 0\n");
        assert_eq!(
            e,
            "cs.toml:5:28: limits.max_processes_per_server: must be at least 1 (each session of a stdio server runs \
             its own process)"
        );
    }

    #[test]
    fn a_toml_syntax_error_has_a_line() {
        let e = err("[gateway\n");
        assert!(e.starts_with("cs.toml:1:"), "{e}");
    }
}
