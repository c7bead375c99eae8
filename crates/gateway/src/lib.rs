//! countersign-gateway: the loopback MCP relay.
//!
//! Clients reach upstream MCP servers only through this crate: the streamable HTTP face
//! on 127.0.0.1 ([`http_face`]) and the stdio shim ([`shim`]), which reaches the gateway
//! on its own socket (`shim_socket`) or, failing that, over HTTP. Every message a client
//! sends is looked up in one default-deny method table, and every operation that reaches
//! a server's tools, resources or prompts passes the policy, an approval if it asks, and
//! an audit commit before it is forwarded ([`govern`], the only place that decides).
//! What is forwarded goes as raw JSON ([`message`], [`session`]).
//!
//! The crate never listens beyond loopback, never forwards a client's token upstream and
//! never writes a secret to a log line.

pub mod api;
pub mod approver;
pub mod client_inventory;
mod control_api;
pub mod credentials;
mod dispatch;
mod front_door;
pub mod govern;
pub mod guard;
mod http_face;
mod listener;
pub mod message;
pub mod modern;
pub mod param_headers;
pub mod pins;
pub mod policy_layers;
pub mod policy_watch;
mod request_body;
pub mod routed;
mod routed_prompts;
pub mod server;
pub mod session;
mod shared;
pub mod shim;
mod shim_socket;
pub mod shim_wire;
mod sign_ins;
pub mod sse_client;
pub mod trace_context;
pub mod upstream;
pub mod who;

pub use api::Gateway;
// This user's local state lives in countersign-local; the gateway names it as its own.
pub use countersign_local::managed_bundle;
pub(crate) use countersign_local::{clock, config, config_edit, gateway_link, home, secret_import, tokens};
pub use countersign_local::{Config, Home};
pub(crate) use countersign_sync::hub_sync;
pub use server::{start, start_with, Running, ServeError};
