//! `countersign-vault`: where credentials live. Secrets (upstream API keys, OAuth tokens)
//! are kept only in the OS keychain; config files hold references to them by name.
//!
//! - [`keychain`]: the OS keychain through keyring-core, one platform store each.
//! - [`reference`]: what config writes in place of a secret (`{ secret = "name" }`).
//! - [`plaintext`]: spots secrets written in plain text, to offer moving them.
//! - [`oauth`]: the MCP authorization flow as a client (rmcp's `auth`), tokens kept in
//!   the keychain.
//!
//! Nothing in this crate writes a secret to a file, a log line or a URL.

pub mod keychain;
pub mod name;
pub mod oauth;
pub mod plaintext;
pub mod reference;
pub mod secret;

/// Log filter directives every binary adds after the user's own: the OAuth libraries log
/// authorization codes and token requests at debug level, so those targets stay at info
/// whatever the user asks for.
pub const LOG_GUARDS: &[&str] = &["rmcp::transport::auth=info", "oauth2=info", "reqwest=info", "hyper=info"];

pub use keychain::{Account, Keychain, OpenError, VaultError};
pub use name::{BadName, SecretName};
pub use reference::{SecretRef, Setting};
pub use secret::Secret;
