//! countersign-gateway: the loopback MCP relay.
//!
//! Clients reach upstream MCP servers only through this crate: the streamable HTTP face
//! on 127.0.0.1 ([`http_face`]) and the stdio shim ([`shim`]). Each `tools/call` passes
//! the policy, an approval if the policy asks, and an audit commit before it is forwarded
//! ([`enforce`]). Everything else is relayed faithfully as raw JSON ([`message`],
//! [`session`]).
//!
//! The crate never listens beyond loopback, never forwards a client's token upstream and
//! never writes a secret to a log line.

pub mod approver;
pub mod client_inventory;
pub mod client_routing;
pub mod clock;
pub mod config;
pub mod config_edit;
mod control_api;
mod credentials;
mod enforce;
pub mod guard;
pub mod home;
pub mod http_face;
pub mod hub_sync;
mod journal_upkeep;
pub mod message;
pub mod pins;
pub mod policy_layers;
pub mod policy_watch;
pub mod secret_import;
pub mod server;
pub mod session;
pub mod shared;
pub mod shim;
mod sign_ins;
pub mod sse_client;
pub mod tokens;
pub mod upstream;

pub use config::Config;
pub use home::Home;
pub use server::{start, start_with, Running, ServeError};
