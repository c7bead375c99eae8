//! countersign-audit: the local audit journal.
//!
//! Every tool call's decision is committed here before the gateway forwards the call, and
//! its outcome is appended after. The journal is a SQLite file (WAL) written by one task
//! that commits in groups, so many concurrent calls share one commit.
//!
//! This crate must never hold a secret: arguments are redacted before they are stored.

mod journal;
mod record;
mod redact;

pub use journal::{Journal, JournalError, JournalOptions, Synchronous};
pub use record::{now_rfc3339, Approval, Outcome, OutcomeRecord, Record, RecordKind};
pub use redact::Redactor;
