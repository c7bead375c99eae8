//! countersign-policy: decides whether one MCP tool call runs, asks the user, or is denied.
//!
//! The crate is pure logic. It must never do I/O, spawn tasks, read the clock or the
//! environment: everything it needs (identity, tool hints, arguments, grants, the time)
//! is passed in, so every decision can be reproduced and tested exhaustively.
//!
//! Rules use Claude Code's permission syntax (`mcp__server`, `mcp__server__tool`, globs)
//! and are checked deny → ask → allow; when no rule matches, the default comes from the
//! tool's annotations, trusted only for servers the configuration marks as trusted.

mod canonical;
mod decision;
mod engine;
mod grant;
mod input;
mod rule;

pub use canonical::{args_hash, canonical_json};
pub use decision::{Decision, Verdict};
pub use engine::{Policy, PolicyRules};
pub use grant::{Grant, GrantScope};
pub use input::{CallInput, Identity, ToolHints};
pub use rule::{Rule, RuleError};
