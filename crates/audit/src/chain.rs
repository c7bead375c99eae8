//! The journal's hash chain. Each record's hash covers every stored column of the record
//! and the previous record's hash, so changing, removing or reordering a record breaks
//! the chain at that point; each outcome's hash covers its columns and its record's hash.
//! Values are fed length-prefixed, with NULL distinct from the empty string, so no two
//! different rows encode alike.
//!
//! What the chain cannot show on its own: records cut off the end. The hub holds the last
//! hash it acknowledged, which covers that.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first chained record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn feed(hasher: &mut Sha256, value: Option<&str>) {
    match value {
        None => hasher.update(b"-;"),
        Some(v) => {
            hasher.update(v.len().to_string().as_bytes());
            hasher.update(b":");
            hasher.update(v.as_bytes());
            hasher.update(b";");
        }
    }
}

fn digest(domain: &[u8], link: &str, fields: &[Option<&str>]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    hasher.update(link.as_bytes());
    hasher.update(b"\n");
    for f in fields {
        feed(&mut hasher, *f);
    }
    hex::encode(hasher.finalize())
}

/// A record's hash: its columns in the journal's order, after the previous hash.
pub fn record_hash(prev: &str, fields: &[Option<&str>]) -> String {
    digest(b"countersign-record-v1\n", prev, fields)
}

/// An outcome's hash: its columns, bound to its record's hash.
pub fn outcome_hash(record: &str, fields: &[Option<&str>]) -> String {
    digest(b"countersign-outcome-v1\n", record, fields)
}

/// `duration_ms` as hashed (the same text when written and when read back).
pub fn duration_text(d: Option<f64>) -> Option<String> {
    d.map(|v| format!("{v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_empty_and_shifted_values_hash_apart() {
        let a = record_hash(GENESIS, &[Some("ab"), Some("c")]);
        assert_ne!(a, record_hash(GENESIS, &[Some("a"), Some("bc")]));
        assert_ne!(record_hash(GENESIS, &[None]), record_hash(GENESIS, &[Some("")]));
        assert_ne!(a, record_hash(&a, &[Some("ab"), Some("c")]), "the previous hash is covered");
        assert_ne!(a, outcome_hash(GENESIS, &[Some("ab"), Some("c")]), "records and outcomes are told apart");
        assert_eq!(a.len(), 64);
    }
}
