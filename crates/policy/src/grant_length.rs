//! How long an approval lasts, as a person chooses it: its names in policy files, the
//! control API and the UI. Plain data; it never measures time.

use serde::{Deserialize, Serialize};

/// How long an approval lasts, as a person chooses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "kebab-case")]
pub enum GrantLength {
    /// This call, these exact arguments, one time.
    Once,
    /// Until the client's session ends.
    Session,
    #[serde(rename = "15m")]
    Minutes15,
    #[serde(rename = "1h")]
    Hour1,
    /// Until midnight, local time.
    Today,
}

impl GrantLength {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantLength::Once => "once",
            GrantLength::Session => "session",
            GrantLength::Minutes15 => "15m",
            GrantLength::Hour1 => "1h",
            GrantLength::Today => "today",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [GrantLength::Once, GrantLength::Session, GrantLength::Minutes15, GrantLength::Hour1, GrantLength::Today]
            .into_iter()
            .find(|l| l.as_str() == text)
    }
}
