//! countersign-policy: decides whether one MCP tool call runs, asks the user, or is denied.
//!
//! The crate is pure logic. It must never do I/O, spawn tasks, read the clock or the
//! environment: everything it needs (identity, tool definitions, arguments, grants, the
//! time, the text of policy files) is passed in, so every decision can be reproduced and
//! tested exhaustively.
//!
//! - `class`, `classify`, `catalog`, `heuristics`: what a tool is (read, write, sensitive,
//!   destructive) and why.
//! - `rule`: the rule grammar (Claude Code's `mcp__server__tool` globs plus `class:`,
//!   `client:` and argument conditions).
//! - `layer`, `layers`, `bundle`: built-in < user < managed < signed bundle (the name of
//!   a layer, the settings each holds), and bundle checks; `schema`: the JSON Schema of
//!   policy files.
//! - `engine`: the decision; `error`: a policy that does not compile; `grant`: approvals,
//!   lockouts and prompt limits.
//! - `similar`: "Allow similar", the scope a grant for the task derives from one call.
//! - `approvers`: who answers a call that asks (self, an agent's owner, a manager, a
//!   person, a group), separation of duties, the fallback when the hub is away.
//! - `pin`: tool pinning and quarantine of suspicious descriptions.
//! - `servers`: which servers may run, and whether AI clients must route through us.
//! - `shown`: text from others as a person reads it (hidden characters as visible escapes).

mod approvers;
mod bundle;
mod canonical;
mod catalog;
mod class;
mod classify;
mod decision;
mod engine;
mod error;
mod grant;
mod grant_length;
mod heuristics;
mod input;
mod layer;
mod layers;
mod pin;
mod plan;
mod rule;
mod schema;
mod servers;
pub mod shown;
mod similar;

pub use approvers::{Approver, ApproverRule, Fallback, Route};
pub use bundle::{
    expired_policy, verify as verify_bundle, verify_kept as verify_kept_bundle, BundleError, BundleHeader,
    VerifiedBundle, EXPIRED_RULE,
};
pub use canonical::{args_hash, canonical_json};
pub use catalog::{Catalog, CatalogEntry};
pub use class::{ClassSource, Classification, ToolClass};
pub use classify::skeleton;
pub use decision::{Decision, Verdict};
pub use engine::Policy;
pub use error::PolicyError;
pub use grant::{Grant, GrantBook, GrantCall, GrantError, GrantLength, GrantRequest, GrantScope, GrantSettings};
pub use input::{
    Access, AccessInput, CallInput, Gate, Identity, ServerInfo, ServerOrigin, ServerScope, Standing, ToolDef, ToolHints,
};
pub use layer::Layer;
pub use layers::{
    AuditBuffer, BundleExpiry, ClassDefaults, ClassOverride, Layers, ManagedFile, ManagedSettings, PolicySettings,
    WhenFull,
};
pub use pin::{collisions, suspicions, tool_fingerprint, tool_suspicions, Collision, PinSet, Review, ToolState};
pub use plan::{
    item_offer as plan_item_offer, ItemRefused, PlanItem, PlanRequest, PlanSettings, MAX_PLAN_ITEMS, MAX_PLAN_TITLE,
};
pub use rule::{glob_escape, is_path_pattern, nfc, normalise, Rule, RuleError, RuleList};
pub use schema::json_schema;
pub use servers::{AllowedServers, ServerMatcher, ServerRules};
pub use similar::{
    derive as derive_similar, NoSimilar, SimilarCall, SimilarOffer, SimilarRule, SimilarScope, SimilarSettings,
    SimilarTools, FILE_KEYS,
};
