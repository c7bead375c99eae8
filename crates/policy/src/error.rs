//! The error a policy that cannot be compiled gives: which rule, in which layer and
//! field, and why. It only describes the fault; it never decides what a policy that
//! does not compile means for calls (that is the caller's to say).

use crate::layer::Layer;
use crate::rule::RuleError;

/// A rule error with the layer and field it sits in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("policy.{list}[{index}]: {error}")]
pub struct PolicyError {
    pub layer: Layer,
    /// `allow`, `ask`, `deny`, `classify`, `grants.once_only`, `servers.allowed` or
    /// `approvers`.
    pub list: &'static str,
    pub index: usize,
    pub error: RuleError,
}
