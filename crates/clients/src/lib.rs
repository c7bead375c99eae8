//! `countersign-clients`: the AI clients on this machine and the MCP servers they are
//! configured with, each marked routed (through Countersign) or shadow (around it).
//!
//! - [`env`]: where configuration lives, from the environment (tests use a temporary home).
//! - [`client`]: the known clients and their files, formats and keys.
//! - [`read`]: one file's servers in the client's own schema.
//! - [`inventory`]: every file found, its servers and their routes.
//!
//! This crate only reads; it never changes a client's file.

pub mod client;
pub mod env;
pub mod inventory;
pub mod read;

pub use client::{ClientKind, Scope};
pub use env::{Env, Os};
pub use inventory::{inventory, FileReport, Route};
