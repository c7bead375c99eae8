//! The benchmark harnesses' shared parts: minimal MCP clients and the measuring.

pub mod clients;
pub mod measure;
