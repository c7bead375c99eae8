//! countersign-audit: the local audit journal.
//!
//! Every tool call's decision is committed here before the gateway forwards the call, and
//! its outcome is appended after. The journal is a SQLite file (WAL); a lone call commits
//! inline, concurrent calls share group commits on the writer thread.
//!
//! Records are hash-chained ([`chain`]); [`JournalReader::verify`] checks the chain.
//!
//! This crate must never hold a secret: arguments are redacted before they are stored.

pub mod chain;
pub mod checkpoint;
mod file_mode;
mod journal;
mod journal_lock;
pub mod outbox;
mod record;
mod redact;
mod verify;
pub mod wire;
mod writer;

pub use journal::{
    ChainReport, Committed, Journal, JournalError, JournalOptions, JournalReader, Synchronous, EXPORT_FIELDS,
    START_RULE,
};
pub use record::{
    now_rfc3339, Approval, Decision, GrantLength, Outcome, OutcomeRecord, Record, RecordGrant, RecordKind, ToolClass,
};
pub use redact::{scrub as scrub_log_text, Redactor};
