//! What the vault adds: reading one secret from the real Secret Service (gnome-keyring
//! over the session D-Bus, an encrypted session, as an upstream's start pays per secret
//! it refers to), and the bearer token for a signed-in remote server as every forwarded
//! request asks for it (served from memory after the first read).
//! Run inside scripts/keyring-session.sh: `make bench-vault`.

use countersign_vault::oauth::store::{KeychainCredentials, SignIn};
use countersign_vault::{Account, Keychain, Secret, SecretName};
use criterion::{criterion_group, criterion_main, Criterion};
use rmcp::transport::auth::CredentialStore;

fn keychain(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let kc = rt.block_on(Keychain::open()).expect("run inside scripts/keyring-session.sh");
    let name = SecretName::new("bench-secret").unwrap();
    rt.block_on(kc.set(&Account::Secret(name.clone()), &Secret::new("ghp_0123456789abcdefghijklmnop".into()))).unwrap();
    c.bench_function("keychain: read one secret (Secret Service)", |b| {
        b.to_async(&rt).iter(|| async { kc.secret(&name).await.unwrap() })
    });

    // A stored sign-in, as `auth login` leaves it; the bearer then comes from memory.
    let store = KeychainCredentials::new("bench-remote", kc);
    let metadata = serde_json::from_value(serde_json::json!({
        "authorization_endpoint": "https://auth.example/authorize",
        "token_endpoint": "https://auth.example/token",
        "issuer": "https://auth.example",
    }))
    .unwrap();
    let token: rmcp::transport::auth::OAuthTokenResponse = serde_json::from_value(serde_json::json!({
        "access_token": "at_0123456789", "token_type": "bearer", "expires_in": 3600, "refresh_token": "rt_0123456789"
    }))
    .unwrap();
    let creds = rmcp::transport::auth::StoredCredentials::new("client".into(), Some(token), vec![], Some(u64::MAX / 2));
    rt.block_on(async {
        store.prepare("https://mcp.example/mcp", metadata).await;
        store.save(creds).await.unwrap();
    });
    let _: Option<SignIn> = rt.block_on(store.load_sign_in()).unwrap();
    c.bench_function("oauth: stored credentials for a request (in memory)", |b| {
        b.to_async(&rt).iter(|| async { store.load().await.unwrap() })
    });
    rt.block_on(async {
        kc.delete(&Account::Secret(name.clone())).await.unwrap();
        store.forget().await.unwrap();
    });
}

criterion_group!(benches, keychain);
criterion_main!(benches);
