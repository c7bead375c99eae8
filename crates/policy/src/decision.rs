//! The answer the engine gives for one call. It never carries out the answer itself.

use serde::Serialize;

/// What happens to the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Ask,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Ask => "ask",
            Decision::Deny => "deny",
        }
    }
}

/// A decision with the rule that made it, a reason a person can read, and the version
/// of the policy that decided (recorded on every audit record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub decision: Decision,
    /// The deciding rule as written (`deny:mcp__fs__delete*`) or the default that applied
    /// (`default:read-only`, `grant:<id>`).
    pub rule: String,
    pub reason: String,
    pub policy_version: String,
}
