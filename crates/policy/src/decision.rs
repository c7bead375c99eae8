//! The answer the engine gives for one call. It never carries out the answer itself.

use crate::class::{ClassSource, ToolClass};
use crate::layer::Layer;
use serde::{Deserialize, Serialize};

/// What happens to the call, least to most strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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

/// A decision with the rule that made it, a reason a person can read, the tool's class
/// and the version of the policy that decided (recorded on every audit record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub decision: Decision,
    /// The deciding rule as written (`deny:mcp__fs__delete*`), or what applied instead
    /// (`default:write`, `grant:<id>`, `lockout`).
    pub rule: String,
    pub reason: String,
    /// The layer that set the deciding rule or default.
    pub layer: Layer,
    pub class: ToolClass,
    pub label: Option<String>,
    pub class_source: ClassSource,
    pub class_reason: String,
    pub policy_version: String,
    /// The grant that let the call through, when one did (single-use grants must be spent).
    pub grant: Option<String>,
    /// Who answers, when the decision is `ask`.
    pub route: Option<crate::approvers::Route>,
}
