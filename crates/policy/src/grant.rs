//! Grants: what an approval leaves behind. A grant covers one client, server and tool,
//! either once for the exact arguments approved or until a deadline. The engine only reads
//! grants; spending a single-use grant is the caller's job.

use crate::canonical::args_hash;
use crate::input::CallInput;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantScope {
    /// Single use, bound to the SHA-256 of the canonical arguments.
    Once { args_hash: String },
    /// Any arguments until the deadline (milliseconds since the Unix epoch).
    Until { expires_ms: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub client_token: String,
    pub server: String,
    pub tool: String,
    pub scope: GrantScope,
}

impl Grant {
    pub fn covers(&self, call: &CallInput<'_>) -> bool {
        if self.client_token != call.identity.client_token || self.server != call.server || self.tool != call.tool {
            return false;
        }
        match &self.scope {
            GrantScope::Once { args_hash: hash } => *hash == args_hash(call.arguments),
            GrantScope::Until { expires_ms } => call.now_ms < *expires_ms,
        }
    }
}
