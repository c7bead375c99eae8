//! The vault against a real Secret Service: gnome-keyring in a private D-Bus session
//! (`scripts/keyring-session.sh`, which `make test` wraps around `cargo test`).

use countersign_vault::{Account, Keychain, Secret, SecretName, VaultError};
use std::process::{Command, Stdio};

fn session_password() -> String {
    std::env::var("COUNTERSIGN_KEYRING_PASSWORD")
        .expect("run inside scripts/keyring-session.sh (a private D-Bus session with gnome-keyring unlocked)")
}

/// The tests here share the session's keyring, and one restarts it locked: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn name(n: &str) -> SecretName {
    SecretName::new(n).unwrap()
}

/// Restarts the session's gnome-keyring: with a password the login keyring opens unlocked;
/// without one it stays locked, as after a reboot before the user logs in.
fn restart_keyring(password: Option<&str>) {
    use std::io::Write;
    let mut cmd = Command::new("gnome-keyring-daemon");
    cmd.args(["--replace", "--components=secrets"]).stdout(Stdio::null()).stderr(Stdio::null());
    if password.is_some() {
        cmd.arg("--unlock").stdin(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(pw) = password {
        child.stdin.take().unwrap().write_all(pw.as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_round_trip_through_the_secret_service_and_a_locked_keychain_fails_closed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let password = session_password();
    let keychain = Keychain::open().await.expect("the session's Secret Service");
    let pat = name("test-github-pat");
    let other = Account::Secret(name("test-other"));

    keychain.set(&Account::Secret(pat.clone()), &Secret::new("ghp_first".into())).await.unwrap();
    keychain.set(&Account::Secret(pat.clone()), &Secret::new("ghp_second".into())).await.unwrap();
    keychain.set(&other, &Secret::new("x".into())).await.unwrap();
    assert_eq!(keychain.secret(&pat).await.unwrap().expose(), "ghp_second", "a set replaces");
    let accounts = keychain.accounts().await.unwrap();
    assert!(accounts.contains(&Account::Secret(pat.clone())) && accounts.contains(&other), "{accounts:?}");

    assert!(keychain.delete(&other).await.unwrap());
    assert!(!keychain.delete(&other).await.unwrap(), "a second delete finds nothing");
    let missing = keychain.get(&other).await.unwrap_err();
    assert!(matches!(missing, VaultError::Missing { .. }), "{missing:?}");
    assert!(missing.to_string().contains("`countersign secret set test-other`"), "{missing}");

    // A keyring that is locked (the daemon started without the login password): reading
    // must fail, naming the secret, and must not hand out anything.
    restart_keyring(None);
    let locked = keychain.secret(&pat).await;
    restart_keyring(Some(&password));
    let error = locked.expect_err("a locked keychain must not give out the secret");
    assert!(matches!(error, VaultError::Locked { .. } | VaultError::Timeout { .. }), "locked keychain gave {error:?}");
    assert!(error.to_string().contains("test-github-pat"), "{error}");
    assert_eq!(keychain.secret(&pat).await.unwrap().expose(), "ghp_second", "unlocked again");
    keychain.delete(&Account::Secret(pat)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_item_countersign_names_itself_never_overwrites_one_that_is_there() {
    let _one = ONE_AT_A_TIME.lock().await;
    session_password();
    let keychain = Keychain::open().await.expect("the session's Secret Service");
    let base = name("test-create-api_key");
    let others = [base.clone(), base.numbered(2), base.numbered(3)];
    for n in &others {
        let _ = keychain.delete(&Account::Secret(n.clone())).await;
    }
    // Another server's item, made by someone else under the name Countersign would pick.
    keychain.set(&Account::Secret(base.clone()), &Secret::new("theirs".into())).await.unwrap();
    let again = keychain.create(&Account::Secret(base.clone()), &Secret::new("mine".into())).await.unwrap_err();
    assert!(matches!(again, VaultError::Exists { .. }), "{again:?}");
    assert_eq!(keychain.secret(&base).await.unwrap().expose(), "theirs", "create never replaces");

    // A free name is chosen: past the item that is there, and past a name the caller says
    // is taken (a reference in the config).
    let taken = base.numbered(2);
    let chosen = keychain.store_new(&base, &Secret::new("mine".into()), |n| *n == taken).await.unwrap();
    assert_eq!(chosen, base.numbered(3));
    assert_eq!(keychain.secret(&base).await.unwrap().expose(), "theirs");
    assert_eq!(keychain.secret(&chosen).await.unwrap().expose(), "mine");
    assert!(matches!(keychain.secret(&taken).await, Err(VaultError::Missing { .. })), "a taken name is not written");
    for n in &others {
        let _ = keychain.delete(&Account::Secret(n.clone())).await;
    }
}
