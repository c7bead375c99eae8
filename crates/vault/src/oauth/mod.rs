//! OAuth 2.1 for remote MCP servers, as a client of the MCP authorization spec.
//!
//! - [`guard`]: checks every URL metadata hands us (case 20).
//! - [`accept`]: checks every token response (sign-in and refresh alike) before it is kept.
//! - [`store`]: one server's sign-in as one keychain item (rmcp's `CredentialStore`).
//! - [`callback`]: the loopback listener the redirect comes back to.
//! - [`login`]: the sign-in flow.
//! - [`browser`]: opens the sign-in page without a shell.
//! - [`session`]: the gateway's bearer token, refreshed.
//! - [`revoke`]: signing out (RFC 7009).
//! - [`idp`]: the person's sign-in to the company's IdP; [`enterprise`]: access to a
//!   server from it (enterprise-managed authorization, ID-JAG), no consent per server.
//!
//! Tokens and codes are never logged, written to a file or put in a URL by this module.

pub mod accept;
pub mod browser;
pub mod callback;
pub mod enterprise;
pub mod guard;
pub mod idp;
pub mod login;
pub mod revoke;
pub mod session;
pub mod store;

pub use enterprise::{Enterprise, EnterpriseError};
pub use idp::IdentityProvider;
pub use login::{sign_in, SignInError, SignInRequest, SignedIn};
pub use revoke::{sign_out, SignedOut};
pub use session::{BearerError, CredentialState, ServerAuth};
