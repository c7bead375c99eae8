//! With no Secret Service to reach, the vault says so and gives nothing (its own test
//! binary, because it points this process's session bus at nothing).

use countersign_vault::{Account, Keychain, SecretName, VaultError};

#[tokio::test(flavor = "multi_thread")]
async fn an_absent_keychain_fails_closed_with_a_plain_message() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}/no-bus", dir.path().display()));
    let error = Keychain::open().await.expect_err("no bus, no keychain");
    assert!(error.0.contains("Secret Service"), "{error}");
    let account = Account::Secret(SecretName::new("github-pat").unwrap());
    let message = error.for_account(&account).to_string();
    assert!(matches!(error.for_account(&account), VaultError::Unavailable { .. }));
    assert!(message.contains("no keychain is available") && message.contains("`github-pat`"), "{message}");
}
