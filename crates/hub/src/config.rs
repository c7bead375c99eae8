//! The hub's config file (`countersign-hub serve --config hub.toml`): where it listens and
//! keeps its data, its signing key, where records are forwarded, the company's OpenID
//! provider and which of its groups hold which role. Flags and environment variables
//! override the file, key by key. `docs/hub-config.schema.json` is generated from these
//! types.
//!
//! It never holds a secret: the OIDC client secret and the HEC token are named by file,
//! a database URL with a password in it is refused, and the break-glass token is given
//! by its digest. A mistake is reported with the file and the key.

use crate::roles::Role;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The hub's config file.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Address to listen on (default `127.0.0.1:47900`).
    pub listen: Option<SocketAddr>,
    /// Database URL (`postgres://user@host/db` or `sqlite:///path/hub.db`), without a
    /// password: give that in `PGPASSWORD`, a `.pgpass` file, or the whole URL in
    /// `COUNTERSIGN_HUB_DATABASE`. Default: `hub.db` in the data directory.
    pub database: Option<String>,
    /// The address people and devices reach the hub at (`https://hub.example.com`): the
    /// IdP sends people back to `<public_url>/v1/auth/callback`. Needed with `[oidc]`.
    pub public_url: Option<String>,
    /// SHA-256 (hex) of the break-glass admin token: off unless set, every use an alert.
    pub admin_token_sha256: Option<String>,
    /// The minisign secret key policy bundles are signed with.
    pub signing_key: Option<PathBuf>,
    /// Days a published bundle stays valid (1–365, default 30).
    pub bundle_days: Option<u64>,
    /// The largest audit batch a device may send, in bytes after decompression.
    pub max_ingest_bytes: Option<usize>,
    /// Where ingested records are forwarded.
    #[serde(default)]
    pub siem: SiemSettings,
    /// The company's OpenID provider, for staff sign-in.
    pub oidc: Option<OidcSettings>,
    /// Which role each IdP group holds (`"it-auditors" = "auditor"`); a person holds the
    /// roles of all their groups, and one in no mapped group may not sign in.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
}

/// Where ingested records are forwarded.
#[derive(Debug, Default, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SiemSettings {
    /// An OTLP/HTTP endpoint (`…:4318`): records as OTLP logs.
    pub otlp_endpoint: Option<String>,
    /// A Splunk HTTP Event Collector (`…:8088`).
    pub splunk_hec_url: Option<String>,
    /// The file holding the HEC token.
    pub splunk_hec_token_file: Option<PathBuf>,
}

/// The company's OpenID provider.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The issuer URL (`https://…`; `http://` only on this machine), whose
    /// `/.well-known/openid-configuration` the hub reads.
    pub issuer: String,
    /// The hub's client id at the provider.
    pub client_id: String,
    /// A file holding the client secret (none: a public client, PKCE only).
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked for (default `openid`, `email`, `profile`, `groups`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claims that carry a person's email, name, groups and manager.
    #[serde(default)]
    pub claims: ClaimNames,
    /// Hours a staff sign-in lasts (1–24, default 8).
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
}

/// The names of the ID token's claims the hub reads.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimNames {
    pub email: String,
    pub name: String,
    pub groups: String,
    pub manager: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames { email: "email".into(), name: "name".into(), groups: "groups".into(), manager: "manager".into() }
    }
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile", "groups"].map(String::from).to_vec()
}

fn default_session_hours() -> u64 {
    8
}

/// A config mistake, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: `{key}` {why}")]
    Invalid { path: String, key: String, why: String },
}

/// Whether `url` is an `http://` URL to this machine (allowed where `https://` is asked).
pub fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

impl HubConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<HubConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        let config: HubConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: shown.clone(), message: e.to_string() })?;
        config.check(&shown)?;
        Ok(config)
    }

    fn check(&self, path: &str) -> Result<(), ConfigError> {
        let invalid =
            |key: &str, why: String| Err(ConfigError::Invalid { path: path.to_string(), key: key.to_string(), why });
        if let Some(db) = &self.database {
            if crate::db::shown(db) != *db {
                return invalid(
                    "database",
                    "holds a password; a config file holds none: give it in PGPASSWORD or a .pgpass file, or the \
                     whole URL in COUNTERSIGN_HUB_DATABASE"
                        .into(),
                );
            }
        }
        if let Some(digest) = &self.admin_token_sha256 {
            if digest.starts_with("csa_") {
                return invalid("admin_token_sha256", "is the token itself; give its SHA-256 digest".into());
            }
            if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
                return invalid(
                    "admin_token_sha256",
                    "must be 64 hex digits (the digest `admin-token create` shows)".into(),
                );
            }
        }
        if let Some(days) = self.bundle_days.filter(|d| !(1..=365).contains(d)) {
            return invalid("bundle_days", format!("must be 1 to 365, not {days}"));
        }
        if let Some(bytes) = self.max_ingest_bytes.filter(|b| !(65_536..=1 << 30).contains(b)) {
            return invalid("max_ingest_bytes", format!("must be 65536 to 1073741824, not {bytes}"));
        }
        if let Some(url) = &self.public_url {
            if !url.starts_with("https://") && !is_loopback_http(url) {
                return invalid(
                    "public_url",
                    format!("must be an https:// URL (http:// only to this machine), not `{url}`"),
                );
            }
        }
        if let Some(oidc) = &self.oidc {
            if !oidc.issuer.starts_with("https://") && !is_loopback_http(&oidc.issuer) {
                return invalid(
                    "oidc.issuer",
                    format!("must be an https:// URL (http:// only to this machine), not `{}`", oidc.issuer),
                );
            }
            if oidc.client_id.trim().is_empty() {
                return invalid("oidc.client_id", "is empty".into());
            }
            if !oidc.scopes.iter().any(|s| s == "openid") {
                return invalid("oidc.scopes", "must include `openid`".into());
            }
            if !(1..=24).contains(&oidc.session_hours) {
                return invalid("oidc.session_hours", format!("must be 1 to 24, not {}", oidc.session_hours));
            }
            if self.public_url.is_none() {
                return invalid("public_url", "is needed with [oidc]: the IdP sends people back to it".into());
            }
            if self.roles.is_empty() {
                return invalid("roles", "maps no IdP group to a role, so no one could sign in".into());
            }
        }
        if let Some(group) = self.roles.keys().find(|g| g.trim().is_empty()) {
            return invalid(&format!("roles.{group:?}"), "is an empty group name".into());
        }
        Ok(())
    }
}

/// The JSON Schema of the hub's config file (`docs/hub-config.schema.json`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(HubConfig)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<HubConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, text).unwrap();
        HubConfig::load(&path).map_err(|e| e.to_string().replace(&path.display().to_string(), "hub.toml"))
    }

    #[test]
    fn a_full_config_reads_and_defaults_fill_the_rest() {
        let c = load(
            r#"
listen = "127.0.0.1:9000"
public_url = "https://hub.example.com"
[siem]
otlp_endpoint = "http://collector:4318"
[oidc]
issuer = "https://idp.example.com"
client_id = "countersign-hub"
client_secret_file = "/etc/countersign-hub/oidc-secret"
[oidc.claims]
groups = "roles"
[roles]
"it-auditors" = "auditor"
"it-admins" = "admin"
"#,
        )
        .unwrap();
        let oidc = c.oidc.unwrap();
        assert_eq!(oidc.scopes, ["openid", "email", "profile", "groups"]);
        assert_eq!((oidc.claims.groups.as_str(), oidc.claims.email.as_str()), ("roles", "email"));
        assert_eq!(oidc.session_hours, 8);
        assert_eq!(c.roles["it-auditors"], Role::Auditor);
    }

    #[test]
    fn each_mistake_names_the_file_and_the_key() {
        for (text, says) in [
            ("listen = 5", "hub.toml: "),
            ("lisen = \"127.0.0.1:1\"", "unknown field `lisen`"),
            ("database = \"postgres://hub:s3cret@db/hub\"", "`database` holds a password"),
            ("admin_token_sha256 = \"csa_abc\"", "`admin_token_sha256` is the token itself"),
            ("admin_token_sha256 = \"abc\"", "`admin_token_sha256` must be 64 hex digits"),
            ("bundle_days = 0", "`bundle_days` must be 1 to 365"),
            ("public_url = \"http://hub.example.com\"", "`public_url` must be an https:// URL"),
            ("[roles]\nx = \"root\"", "unknown variant `root`"),
            (
                "public_url = \"https://h\"\n[oidc]\nissuer = \"http://idp.example.com\"\nclient_id = \"c\"\n[roles]\ng = \"admin\"",
                "`oidc.issuer` must be an https:// URL",
            ),
            ("[oidc]\nissuer = \"https://idp\"\nclient_id = \"c\"\n[roles]\ng = \"admin\"", "`public_url` is needed with [oidc]"),
            ("public_url = \"https://h\"\n[oidc]\nissuer = \"https://idp\"\nclient_id = \"c\"", "`roles` maps no IdP group"),
            (
                "public_url = \"https://h\"\n[oidc]\nissuer = \"https://idp\"\nclient_id = \"c\"\nscopes = [\"email\"]\n[roles]\ng = \"admin\"",
                "`oidc.scopes` must include `openid`",
            ),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.starts_with("hub.toml: ") && e.contains(says), "{text:?}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn loopback_http_is_told_apart_from_the_rest() {
        assert!(is_loopback_http("http://127.0.0.1:8080/x"));
        assert!(is_loopback_http("http://localhost"));
        assert!(!is_loopback_http("http://127.0.0.1.evil.example/"));
        assert!(!is_loopback_http("http://localhost@evil.example/"));
        assert!(!is_loopback_http("https://127.0.0.1"));
    }

    #[test]
    fn the_published_schema_matches_the_types() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/hub-config.schema.json");
        let text = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), text, "stale: UPDATE_GOLDEN=1");
    }
}
