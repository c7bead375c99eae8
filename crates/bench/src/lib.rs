//! The benchmark harnesses' shared parts: minimal MCP clients, the measuring, and the
//! check of what a run left in the gateway's journal.

pub mod clients;
pub mod journal;
pub mod measure;
