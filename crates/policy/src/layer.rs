//! Which layer of policy a setting, rule or default came from: built-in < user <
//! managed < signed bundle. A name only: it never holds or merges settings (that is
//! `layers`).

use serde::Serialize;

/// Where a setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Builtin,
    User,
    Managed,
    Bundle,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Builtin => "builtin",
            Layer::User => "user",
            Layer::Managed => "managed",
            Layer::Bundle => "bundle",
        }
    }

    /// Whether this layer is IT's (managed file or signed bundle).
    pub fn is_managed(self) -> bool {
        matches!(self, Layer::Managed | Layer::Bundle)
    }
}
