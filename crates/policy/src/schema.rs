//! The JSON Schema of policy files (`docs/policy.schema.json` is generated from it): the
//! `[policy]` and `[managed]` tables and a bundle's `[bundle]` header, as the types that
//! read them describe. It only describes; it never reads or checks a policy file.

use crate::bundle::BundleHeader;
use crate::layers::{ManagedSettings, PolicySettings};

/// The JSON Schema of policy files (`docs/policy.schema.json` is generated from it).
pub fn json_schema() -> serde_json::Value {
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    /// A Countersign policy file: the `[policy]` table of the user config or of
    /// `managed.toml` (which may also hold `[managed]`), or the body of a signed bundle.
    struct PolicyFile {
        policy: Option<PolicySettings>,
        managed: Option<ManagedSettings>,
        bundle: Option<BundleHeader>,
    }
    serde_json::to_value(schemars::schema_for!(PolicyFile)).unwrap_or_default()
}
