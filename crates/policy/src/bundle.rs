//! Signed policy bundles from the hub: a TOML document (`[bundle]` header plus `[policy]`)
//! signed with minisign (Ed25519). Verified against the public key that only the managed
//! OS layer can set; a bundle carries a version and an expiry. A bundle offered for the
//! first time is refused when it has expired or is older than the rollback floor (the
//! last good bundle's version, itself a verified signed bundle, never a bare number); the
//! last good bundle stays in force after it expires, as the managed policy says
//! ([`crate::BundleExpiry`]). Verification is pure: the caller reads the files, supplies
//! the time and keeps the last good bundle. It must never accept a bundle whose signature
//! does not verify, whatever else it says.

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

/// A bundle whose signature and document passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBundle {
    pub header: BundleHeader,
    pub policy: PolicySettings,
    /// `header.expires` as a Unix time.
    pub expires_unix: i64,
}

impl VerifiedBundle {
    pub fn is_expired(&self, now_unix: i64) -> bool {
        self.expires_unix <= now_unix
    }
}

/// The rule name of the journal record written when the bundle in force expires; the
/// hub raises an alert for it.
pub const EXPIRED_RULE: &str = "policy-bundle-expired";

/// What the last good bundle's policy becomes once it has expired, as the managed file's
/// `bundle_expiry` says: kept as it is, or every tool it named in a rule, and every class
/// whose default it set, denied. Its class overrides, grant limits and server rules
/// (which only tighten) stay.
pub fn expired_policy(policy: &PolicySettings, expiry: crate::layers::BundleExpiry) -> PolicySettings {
    use crate::decision::Decision;
    use crate::layers::BundleExpiry;
    match expiry {
        BundleExpiry::KeepEnforcing => policy.clone(),
        BundleExpiry::DenyGoverned => {
            let mut denied = policy.clone();
            let mut rules = std::mem::take(&mut denied.deny);
            rules.append(&mut denied.ask);
            rules.append(&mut denied.allow);
            denied.deny = rules;
            for d in [
                &mut denied.defaults.read,
                &mut denied.defaults.write,
                &mut denied.defaults.sensitive,
                &mut denied.defaults.destructive,
            ] {
                if d.is_some() {
                    *d = Some(Decision::Deny);
                }
            }
            denied
        }
    }
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

/// Verifies a bundle offered for the first time: signature, then document, expiry and
/// version (at least the floor: the newest version already accepted).
pub fn verify(
    document: &[u8],
    signature: Option<&str>,
    public_key: Option<&str>,
    now_unix: i64,
    newest_accepted: Option<u64>,
) -> Result<VerifiedBundle, BundleError> {
    let b = verify_kept(document, signature, public_key, newest_accepted)?;
    if b.is_expired(now_unix) {
        return Err(BundleError::Expired(b.header.expires));
    }
    Ok(b)
}

/// Verifies a bundle already accepted once (the last good one, kept): signature,
/// document and version as [`verify`], but an expired one is returned, marked by its
/// expiry, because the last good bundle holds until a newer one replaces it.
pub fn verify_kept(
    document: &[u8],
    signature: Option<&str>,
    public_key: Option<&str>,
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
    if let Some(newest) = newest_accepted {
        if doc.bundle.version < newest {
            return Err(BundleError::Rollback { got: doc.bundle.version, newest });
        }
    }
    Ok(VerifiedBundle { header: doc.bundle, policy: doc.policy, expires_unix: expires.unix_timestamp() })
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

    #[test]
    fn a_kept_bundle_holds_after_expiry_but_never_below_the_floor_or_unsigned() {
        let (pk, sig) = sign(DOC.as_bytes());
        let kept = verify_kept(DOC.as_bytes(), Some(&sig), Some(&pk), Some(7)).unwrap();
        assert!(kept.is_expired(1_900_000_000) && !kept.is_expired(NOW));
        assert_eq!(
            verify_kept(DOC.as_bytes(), Some(&sig), Some(&pk), Some(8)),
            Err(BundleError::Rollback { got: 7, newest: 8 })
        );
        let edited = DOC.replace("version = 7", "version = 999");
        assert_eq!(verify_kept(edited.as_bytes(), Some(&sig), Some(&pk), None), Err(BundleError::WrongSignature));
        assert_eq!(verify_kept(DOC.as_bytes(), None, Some(&pk), None), Err(BundleError::Unsigned));
    }

    #[test]
    fn an_expired_bundle_keeps_enforcing_or_denies_all_it_governed() {
        use crate::decision::Decision;
        use crate::layers::BundleExpiry;
        let p: PolicySettings = toml::from_str(
            "allow = [\"mcp__a__read\"]\nask = [\"mcp__a__write\"]\ndeny = [\"mcp__a__drop\"]\n\
             defaults = { write = \"allow\" }\n[servers]\nrequire_routing = true\n",
        )
        .unwrap();
        assert_eq!(expired_policy(&p, BundleExpiry::KeepEnforcing), p);
        let denied = expired_policy(&p, BundleExpiry::DenyGoverned);
        assert_eq!(denied.deny, vec!["mcp__a__drop", "mcp__a__write", "mcp__a__read"]);
        assert!(denied.allow.is_empty() && denied.ask.is_empty());
        assert_eq!(denied.defaults.write, Some(Decision::Deny));
        assert_eq!(denied.defaults.read, None, "a class the bundle left alone stays as the layers below say");
        assert!(denied.servers.require_routing);
    }
}
