//! ID tokens the hub must refuse, each with a clear message: a wrong audience, a wrong
//! issuer, a wrong nonce, an expired one, one signed with a key the provider does not
//! publish, one with `alg: none`, one whose email the IdP marks unverified. The keys in
//! `testdata/` are test-only; the provider's published set holds only the first.

use super::*;
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRsaPrivateSigningKey,
};
use openidconnect::{
    AdditionalClaims, Audience, EndUserEmail, IdToken, IdTokenClaims, JsonWebKeyId, PrivateSigningKey, StandardClaims,
    SubjectIdentifier,
};
use serde::{Deserialize, Serialize};

pub(crate) const ISSUER: &str = "https://idp.example.com";
pub(crate) const CLIENT: &str = "countersign-hub";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Extra {
    groups: Vec<String>,
    manager: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
}
impl AdditionalClaims for Extra {}

pub(crate) fn key(file: &str, kid: &str) -> CoreRsaPrivateSigningKey {
    let pem =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(file)).unwrap();
    CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(kid.into()))).unwrap()
}

fn verifier() -> CoreIdTokenVerifier<'static> {
    let published = CoreJsonWebKeySet::new(vec![key("oidc-test-key.pem", "k1").as_verification_key()]);
    CoreIdTokenVerifier::new_public_client(
        ClientId::new(CLIENT.into()),
        IssuerUrl::new(ISSUER.into()).unwrap(),
        published,
    )
}

/// An ID token to sign, good unless a field says otherwise.
pub(crate) struct Token {
    pub issuer: String,
    pub audience: &'static str,
    pub nonce: String,
    pub expires_in: i64,
    pub key: (&'static str, &'static str),
    pub email_verified: Option<bool>,
    pub email: &'static str,
    pub groups: Vec<&'static str>,
}

impl Default for Token {
    fn default() -> Self {
        Token {
            issuer: ISSUER.into(),
            audience: CLIENT,
            nonce: "n-123".into(),
            expires_in: 300,
            key: ("oidc-test-key.pem", "k1"),
            email_verified: None,
            email: "Ana@Example.com",
            groups: vec!["it-auditors", "staff"],
        }
    }
}

impl Token {
    pub(crate) fn sign(&self) -> String {
        let now = chrono::Utc::now();
        let claims = IdTokenClaims::<Extra, CoreGenderClaim>::new(
            IssuerUrl::new(self.issuer.clone()).unwrap(),
            vec![Audience::new(self.audience.into())],
            now + chrono::Duration::seconds(self.expires_in),
            now - chrono::Duration::seconds(600),
            StandardClaims::new(SubjectIdentifier::new("ana-1".into()))
                .set_email(Some(EndUserEmail::new(self.email.into()))),
            Extra {
                groups: self.groups.iter().map(|g| g.to_string()).collect(),
                manager: "boss@example.com".into(),
                email_verified: self.email_verified,
            },
        )
        .set_nonce(Some(Nonce::new(self.nonce.clone())));
        let token = IdToken::<Extra, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>::new(
            claims,
            &key(self.key.0, self.key.1),
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            None,
            None,
        )
        .unwrap();
        token.to_string()
    }
}

fn check(raw: &str) -> Result<Person, SignInError> {
    verify(raw, &verifier(), &Nonce::new("n-123".into()), &ClaimNames::default())
}

#[test]
fn a_good_token_names_the_person_with_their_groups_and_manager() {
    let person = check(&Token::default().sign()).unwrap();
    assert_eq!(person.email, "ana@example.com");
    assert_eq!(person.subject, "ana-1");
    assert_eq!(person.groups, ["it-auditors", "staff"]);
    assert_eq!(person.manager.as_deref(), Some("boss@example.com"));
    let renamed = ClaimNames { groups: "nope".into(), ..ClaimNames::default() };
    let person = verify(&Token::default().sign(), &verifier(), &Nonce::new("n-123".into()), &renamed).unwrap();
    assert!(person.groups.is_empty(), "groups come only from the configured claim");
}

#[test]
fn every_bad_token_is_refused_with_a_message_that_says_why() {
    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong aud", Token { audience: "someone-else", ..Token::default() }.sign(), "audience"),
        ("wrong iss", Token { issuer: "https://evil.example.com".into(), ..Token::default() }.sign(), "issuer"),
        ("wrong nonce", Token { nonce: "n-other".into(), ..Token::default() }.sign(), "nonce"),
        ("expired", Token { expires_in: -120, ..Token::default() }.sign(), "expired"),
        ("unknown key", Token { key: ("oidc-other-key.pem", "k2"), ..Token::default() }.sign(), "key"),
        ("same kid, other key", Token { key: ("oidc-other-key.pem", "k1"), ..Token::default() }.sign(), "signature"),
    ];
    for (what, raw, says) in cases {
        let e = check(&raw).unwrap_err().to_string();
        assert!(e.starts_with("the ID token was refused"), "{what}: {e}");
        assert!(e.to_lowercase().contains(says), "{what}: {e}");
        assert!(!e.contains(&raw), "{what}: the message holds no token");
    }
}

#[test]
fn an_unsigned_token_and_garbage_are_refused() {
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = chrono::Utc::now().timestamp();
    let none = format!(
        "{}.{}.",
        b64(serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(serde_json::json!({"iss": ISSUER, "aud": CLIENT, "sub": "x", "email": "eve@example.com",
                               "exp": now + 300, "iat": now, "nonce": "n-123"}))
    );
    let e = check(&none).unwrap_err().to_string();
    assert!(e.starts_with("the ID token was refused"), "{e}");
    for garbage in ["", "a.b.c", "not a token"] {
        assert!(matches!(check(garbage), Err(SignInError::Token(_))), "{garbage:?}");
    }
}

#[test]
fn an_email_the_idp_marks_unverified_is_refused() {
    let e = check(&Token { email_verified: Some(false), ..Token::default() }.sign()).unwrap_err();
    assert!(matches!(e, SignInError::UnverifiedEmail(_)), "{e}");
    assert!(check(&Token { email_verified: Some(true), ..Token::default() }.sign()).is_ok());
}
