//! What every route and every gate shares: the database, the admin token's digest, the
//! signing key, the hub's limits and its IdP. Data only: it never answers a request, and never
//! holds a credential in plain text.

use crate::db::Db;

pub struct Hub {
    pub db: Db,
    /// SHA-256 of the admin bearer token; none: admin endpoints refuse everyone.
    pub admin_token_sha256: Option<String>,
    /// The key published policy is signed with; none: publishing is refused.
    pub signing_key: Option<crate::publish::SigningKey>,
    /// How long a published bundle stays valid.
    pub bundle_valid_for: std::time::Duration,
    /// Woken when this instance publishes (other instances are seen by polling).
    pub published: tokio::sync::Notify,
    /// Where new records are forwarded (OTLP, Splunk HEC), if anywhere.
    pub siem: crate::siem::Siem,
    /// The largest audit batch taken, after decompression (larger ones are answered 413).
    pub max_ingest_bytes: usize,
    /// Staff sign-in with the company's IdP, when `[oidc]` is configured.
    pub sign_in: Option<crate::oidc::SignIn>,
    /// Wrong user codes typed at `/enroll`, by address (guessing is cut off).
    pub guesses: crate::guesses::Guesses,
    /// Woken when a routed approval request is raised, answered or withdrawn here (the
    /// long polls of other instances look again every 2 s).
    pub approvals_changed: tokio::sync::Notify,
}
