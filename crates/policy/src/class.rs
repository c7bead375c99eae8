//! What a tool is: its class (how much harm a call can do), a data label for the audit
//! record, and where that knowledge came from. Classes are ordered by strictness, so
//! "stricter" is a comparison and "only tighten" is `max`.

use serde::{Deserialize, Serialize};

/// How much harm a call can do, least to most strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolClass {
    /// Reads data, changes nothing.
    Read,
    /// Changes data in an ordinary, recoverable way.
    Write,
    /// Reads or writes data labelled sensitive: secrets, credentials, personal data, payments.
    Sensitive,
    /// Deletes, overwrites or otherwise does what cannot be undone.
    Destructive,
}

impl ToolClass {
    pub const ALL: [ToolClass; 4] = [ToolClass::Read, ToolClass::Write, ToolClass::Sensitive, ToolClass::Destructive];

    pub fn as_str(self) -> &'static str {
        match self {
            ToolClass::Read => "read",
            ToolClass::Write => "write",
            ToolClass::Sensitive => "sensitive",
            ToolClass::Destructive => "destructive",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        ToolClass::ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl std::fmt::Display for ToolClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a classification came from, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassSource {
    /// IT's managed policy.
    Managed,
    /// The user's own policy file (which can only tighten).
    User,
    /// The curated catalog shipped with Countersign.
    Catalog,
    /// The server's own annotations.
    Annotation,
    /// Words in the tool's name, description or input schema, or in the call's arguments.
    Heuristic,
    /// Nothing was known: unknown tools are at least `write`.
    Default,
}

impl ClassSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ClassSource::Managed => "managed",
            ClassSource::User => "user",
            ClassSource::Catalog => "catalog",
            ClassSource::Annotation => "annotation",
            ClassSource::Heuristic => "heuristic",
            ClassSource::Default => "default",
        }
    }
}

/// A tool's class, its data label, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub class: ToolClass,
    /// A data classification label for the audit record (`credentials`, `personal`,
    /// `source-code`, ...), when one is known.
    pub label: Option<String>,
    pub source: ClassSource,
    /// A sentence a person can read: why this class.
    pub reason: String,
    /// Argument names whose values are sensitive for this tool: the journal keeps a
    /// salted hash of them, never the value.
    pub redact: Vec<String>,
}

impl Classification {
    pub fn new(class: ToolClass, source: ClassSource, reason: impl Into<String>) -> Self {
        Classification { class, label: None, source, reason: reason.into(), redact: Vec::new() }
    }

    /// This classification, made at least as strict as `other` (which wins when stricter).
    /// Fields to redact add up: whoever marks a field sensitive is heeded.
    pub fn tightened_by(self, other: Classification) -> Classification {
        let mut redact = self.redact.clone();
        redact.extend(other.redact.iter().filter(|f| !self.redact.contains(f)).cloned());
        if other.class > self.class {
            Classification { label: other.label.clone().or(self.label), redact, ..other }
        } else {
            Classification { label: self.label.or(other.label), redact, ..self }
        }
    }
}
