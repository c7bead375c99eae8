//! `countersign-clients`: the AI clients on this machine and the MCP servers they are
//! configured with, each marked routed (through Countersign) or shadow (around it).
//!
//! - [`env`]: where configuration lives, from the environment (tests use a temporary home).
//! - [`client`]: the known clients and their files, formats and keys.
//! - [`read`]: one file's servers in the client's own schema.
//! - [`inventory`]: every file found, its servers and their routes.
//! - [`routing`]: what a routed entry looks like in each client's syntax.
//! - [`edit`]: format-preserving edits of one entry (JSON/JSONC, TOML, YAML), checked.
//! - [`rewrite`]: a whole file routed, or put back as it was.
//! - [`apply`]: timestamped backups and atomic writes.
//!
//! Deciding what to route (names, secrets, tokens) is the gateway's `client_routing`;
//! this crate never touches the keychain or Countersign's own config.

pub mod apply;
pub mod client;
pub mod edit;
pub mod env;
pub mod inventory;
pub mod read;
pub mod rewrite;
pub mod routing;

pub use client::{ClientKind, Scope};
pub use env::{Env, Os};
pub use inventory::{inventory, mark_blocked, FileReport, Route};
