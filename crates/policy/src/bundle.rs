//! Signed policy bundles from the hub: a TOML document (`[bundle]` header plus `[policy]`)
//! signed with minisign (Ed25519). Verified against the public key that only the managed
//! OS layer can set; a bundle carries a version and an expiry, and one older than the
//! newest already accepted is refused (no rollback). Verification is pure: the caller
//! reads the files, supplies the time and remembers the newest version it accepted.

use crate::layers::PolicySettings;
use minisign_verify::{PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// The `[bundle]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BundleHeader {
    /// Increases with every publication; older versions are refused once a newer one
    /// was accepted.
    pub version: u64,
    /// RFC 3339 time after which the bundle is no longer accepted.
    pub expires: String,
    /// RFC 3339 time of publication.
    #[serde(default)]
    pub issued: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleDoc {
    bundle: BundleHeader,
    #[serde(default)]
    policy: PolicySettings,
}

/// A bundle that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBundle {
    pub header: BundleHeader,
    pub policy: PolicySettings,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("no bundle public key is set in the managed policy, so no bundle can be trusted")]
    NoKey,
    #[error("the managed bundle public key is not a minisign public key: {0}")]
    BadKey(String),
    #[error("the bundle has no signature")]
    Unsigned,
    #[error("the bundle signature cannot be read: {0}")]
    BadSignature(String),
    #[error("the bundle signature does not verify with the managed public key")]
    WrongSignature,
    #[error("the bundle is not valid policy TOML: {0}")]
    BadDocument(String),
    #[error("the bundle's `expires` is not an RFC 3339 time: {0}")]
    BadExpiry(String),
    #[error("the bundle expired at {0}")]
    Expired(String),
    #[error("bundle version {got} is older than version {newest}, already accepted (rollback refused)")]
    Rollback { got: u64, newest: u64 },
}

/// Verifies a bundle: signature, then document, expiry and version.
pub fn verify(
    document: &[u8],
    signature: Option<&str>,
    public_key: Option<&str>,
    now_unix: i64,
    newest_accepted: Option<u64>,
) -> Result<VerifiedBundle, BundleError> {
    let key = public_key.ok_or(BundleError::NoKey)?;
    let key = PublicKey::from_base64(key.trim()).map_err(|e| BundleError::BadKey(e.to_string()))?;
    let signature = signature.filter(|s| !s.trim().is_empty()).ok_or(BundleError::Unsigned)?;
    let signature = Signature::decode(signature).map_err(|e| BundleError::BadSignature(e.to_string()))?;
    key.verify(document, &signature, false).map_err(|_| BundleError::WrongSignature)?;
    let text = std::str::from_utf8(document).map_err(|e| BundleError::BadDocument(e.to_string()))?;
    let doc: BundleDoc = toml::from_str(text).map_err(|e| BundleError::BadDocument(e.to_string()))?;
    let expires = time::OffsetDateTime::parse(&doc.bundle.expires, &time::format_description::well_known::Rfc3339)
        .map_err(|e| BundleError::BadExpiry(e.to_string()))?;
    if expires.unix_timestamp() <= now_unix {
        return Err(BundleError::Expired(doc.bundle.expires));
    }
    if let Some(newest) = newest_accepted {
        if doc.bundle.version < newest {
            return Err(BundleError::Rollback { got: doc.bundle.version, newest });
        }
    }
    Ok(VerifiedBundle { header: doc.bundle, policy: doc.policy })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Signs `document` with a fresh minisign key pair: (public key base64, signature text).
    pub(crate) fn sign(document: &[u8]) -> (String, String) {
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let sig = minisign::sign(Some(&kp.pk), &kp.sk, std::io::Cursor::new(document), None, None).unwrap();
        (kp.pk.to_base64(), sig.into_string())
    }

    const DOC: &str =
        "[bundle]\nversion = 7\nexpires = \"2030-01-01T00:00:00Z\"\n[policy]\ndeny = [\"mcp__gh__delete*\"]\n";
    const NOW: i64 = 1_800_000_000; // 2027-01-15

    #[test]
    fn a_good_bundle_verifies() {
        let (pk, sig) = sign(DOC.as_bytes());
        let b = verify(DOC.as_bytes(), Some(&sig), Some(&pk), NOW, Some(7)).unwrap();
        assert_eq!(b.header.version, 7);
        assert_eq!(b.policy.deny, vec!["mcp__gh__delete*"]);
    }

    #[test]
    fn bad_bundles_are_refused_with_the_reason() {
        let (pk, sig) = sign(DOC.as_bytes());
        let (other_pk, _) = sign(b"x");
        let tampered = DOC.replace("delete*", "nothing");
        assert_eq!(verify(DOC.as_bytes(), Some(&sig), None, NOW, None), Err(BundleError::NoKey));
        assert_eq!(verify(DOC.as_bytes(), None, Some(&pk), NOW, None), Err(BundleError::Unsigned));
        assert_eq!(verify(DOC.as_bytes(), Some(&sig), Some(&other_pk), NOW, None), Err(BundleError::WrongSignature));
        assert_eq!(verify(tampered.as_bytes(), Some(&sig), Some(&pk), NOW, None), Err(BundleError::WrongSignature));
        assert!(matches!(
            verify(DOC.as_bytes(), Some("junk"), Some(&pk), NOW, None),
            Err(BundleError::BadSignature(_))
        ));
        assert!(matches!(
            verify(DOC.as_bytes(), Some(&sig), Some("RWQnotakey"), NOW, None),
            Err(BundleError::BadKey(_))
        ));
        assert_eq!(
            verify(DOC.as_bytes(), Some(&sig), Some(&pk), 1_900_000_000, None),
            Err(BundleError::Expired("2030-01-01T00:00:00Z".into()))
        );
        assert_eq!(
            verify(DOC.as_bytes(), Some(&sig), Some(&pk), NOW, Some(8)),
            Err(BundleError::Rollback { got: 7, newest: 8 })
        );
    }
}
