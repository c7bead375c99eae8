//! The one place that decides. Every message a client sends is looked up in one
//! default-deny table of MCP methods ([`methods`]): anything it does not name, in any
//! other spelling or as the wrong kind of message, is refused and audited. Every
//! operation that reaches a server's tools, resources or prompts gets a policy decision
//! and a journal record here (tool calls in [`call`], everything else in [`access`]),
//! and the upstream link takes a client's request only with the [`Permit`] that a
//! committed record produces ([`permit`]). The kill switch, the allowed-server list and
//! a tool's pins are inputs of the policy's decision, not overrides beside it.
//! Arguments are judged as the server will read them ([`arguments`]); calls that need a
//! person wait in [`approvals`], and leave when their client gives up. A server's own
//! requests to the client are decided and recorded here too ([`server_requests`]).
//! A client's session plan is checked, asked once and granted item by item in [`plan`].
//!
//! Must never: forward anything the table does not name, decide anywhere else, or let a
//! call run after its client gave up.

pub mod access;
pub mod approvals;
pub mod arguments;
mod call;
pub(crate) mod hold;
pub mod methods;
mod offer;
pub mod permit;
mod plan;
pub mod server_requests;

pub use call::commit_failed;
pub use permit::{Outbound, OwnRequest, Permit};
