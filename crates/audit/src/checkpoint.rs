//! Checkpoints: the hub's signed statement that it holds a device's chain up to one
//! record (its place and hash). The laptop keeps every checkpoint it is given and the hub
//! keeps them too, so history the hub acknowledged cannot be rewritten on the laptop, even
//! by someone who recomputes the whole (unkeyed) chain: the rewritten record's hash no
//! longer matches a statement only the hub's key can sign.
//!
//! The statement is plain text with its own first line, so a checkpoint's signature can
//! never pass as a policy bundle's (which must parse as a TOML bundle) or the reverse.
//! This module signs nothing and holds no key: the hub signs, this checks.

use minisign_verify::{PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// One signed checkpoint, as the hub sends it and the laptop stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The hub's id of the device whose chain this is.
    pub device: String,
    /// The record's place in the device's journal.
    pub seq: i64,
    /// The record's hash.
    pub hash: String,
    /// When the hub signed it (RFC 3339).
    pub time: String,
    /// A minisign signature of [`statement`] by the hub's key.
    pub signature: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("the hub's public key cannot be read: {0}")]
    BadKey(String),
    #[error("the checkpoint at record {seq} has a malformed signature: {message}")]
    Malformed { seq: i64, message: String },
    #[error("the checkpoint at record {seq} is not signed by the hub's key (forged or altered)")]
    Forged { seq: i64 },
}

/// The exact text the hub signs for a checkpoint.
pub fn statement(device: &str, seq: i64, hash: &str, time: &str) -> String {
    format!("countersign-checkpoint-v1\ndevice {device}\nseq {seq}\nhash {hash}\ntime {time}\n")
}

/// The exact text the hub signs for a routed approval's answer: the request, the
/// arguments it was raised for, what was answered and by whom. The asking device runs the
/// call only on an approval whose signature checks with the hub's key (when it knows one),
/// so neither a hostile hub without the key nor anyone on the way can approve a call.
pub fn approval_statement(request: &str, args_hash: &str, state: &str, by: &str) -> String {
    format!("countersign-approval-v1\nrequest {request}\nargs {args_hash}\nstate {state}\nby {by}\n")
}

/// Whether `signature` (minisign) over `text` checks with `public_key` (base64).
pub fn signed_by(public_key: &str, text: &str, signature: &str) -> bool {
    let (Ok(key), Ok(signature)) = (PublicKey::from_base64(public_key.trim()), Signature::decode(signature)) else {
        return false;
    };
    key.verify(text.as_bytes(), &signature, false).is_ok()
}

impl Checkpoint {
    /// The text this checkpoint's signature covers.
    pub fn statement(&self) -> String {
        statement(&self.device, self.seq, &self.hash, &self.time)
    }

    /// Checks the signature against the hub's minisign public key (base64, as in the
    /// managed policy's `bundle_public_key`).
    pub fn verify(&self, public_key: &str) -> Result<(), CheckpointError> {
        let key = PublicKey::from_base64(public_key.trim()).map_err(|e| CheckpointError::BadKey(e.to_string()))?;
        let signature = Signature::decode(&self.signature)
            .map_err(|e| CheckpointError::Malformed { seq: self.seq, message: e.to_string() })?;
        key.verify(self.statement().as_bytes(), &signature, false)
            .map_err(|_| CheckpointError::Forged { seq: self.seq })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A key pair and a checkpoint it signed: (public key base64, checkpoint).
    pub(crate) fn signed(seq: i64, hash: &str) -> (String, Checkpoint, minisign::KeyPair) {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let cp = sign_with(&kp, seq, hash);
        (kp.pk.to_base64(), cp, kp)
    }

    pub(crate) fn sign_with(kp: &minisign::KeyPair, seq: i64, hash: &str) -> Checkpoint {
        let time = "2026-11-30T00:00:00Z".to_string();
        let text = statement("dev-1", seq, hash, &time);
        let signature =
            minisign::sign(None, &kp.sk, std::io::Cursor::new(text.as_bytes()), None, None).unwrap().into_string();
        Checkpoint { device: "dev-1".into(), seq, hash: hash.into(), time, signature }
    }

    #[test]
    fn an_approval_statement_checks_only_as_signed() {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let text = approval_statement("r1", "h1", "approved", "nora@example.com");
        let sig =
            minisign::sign(None, &kp.sk, std::io::Cursor::new(text.as_bytes()), None, None).unwrap().into_string();
        let pk = kp.pk.to_base64();
        assert!(signed_by(&pk, &text, &sig));
        for other in [
            approval_statement("r2", "h1", "approved", "nora@example.com"),
            approval_statement("r1", "h2", "approved", "nora@example.com"),
            approval_statement("r1", "h1", "approved", "pia@example.com"),
        ] {
            assert!(!signed_by(&pk, &other, &sig), "{other}");
        }
        let stranger = minisign::KeyPair::generate_unencrypted_keypair().unwrap().pk.to_base64();
        assert!(!signed_by(&stranger, &text, &sig));
        assert!(!signed_by(&pk, &text, "not a signature"));
        // A checkpoint's signature never passes as an approval's.
        let (_, cp, _) = signed(1, "h1");
        assert!(!signed_by(&pk, &text, &cp.signature));
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_to_it_does_not() {
        let (key, cp, _) = signed(7, &"ab".repeat(32));
        cp.verify(&key).unwrap();
        for changed in [
            Checkpoint { seq: 8, ..cp.clone() },
            Checkpoint { hash: "cd".repeat(32), ..cp.clone() },
            Checkpoint { device: "dev-2".into(), ..cp.clone() },
            Checkpoint { time: "2027-01-01T00:00:00Z".into(), ..cp.clone() },
        ] {
            assert_eq!(changed.verify(&key), Err(CheckpointError::Forged { seq: changed.seq }));
        }
        let (other_key, _, _) = signed(7, "x");
        assert_eq!(cp.verify(&other_key), Err(CheckpointError::Forged { seq: 7 }));
        let garbled = Checkpoint { signature: "not a signature".into(), ..cp };
        assert!(matches!(garbled.verify(&key), Err(CheckpointError::Malformed { .. })));
        assert!(matches!(garbled.verify("%%%"), Err(CheckpointError::BadKey(_))));
    }

    #[test]
    fn the_statement_is_not_a_policy_bundle() {
        let text = statement("d", 1, "h", "t");
        assert!(toml_free_first_line(&text));
    }

    fn toml_free_first_line(text: &str) -> bool {
        // A bundle must start with TOML (a table header or `key = value`); this line is neither.
        let first = text.lines().next().unwrap();
        !first.starts_with('[') && !first.contains('=')
    }
}
