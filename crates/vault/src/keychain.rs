//! The OS keychain, through keyring-core with the store chosen explicitly: the Secret
//! Service (gnome-keyring, KWallet) on Linux, the login Keychain on macOS, Credential
//! Manager on Windows. Every item lives under the service `countersign`, its account
//! saying what it holds (`secret:NAME`, `oauth:SERVER`).
//!
//! Every operation runs on a blocking thread with a deadline, so a keychain that waits
//! for an unlock prompt cannot stall the gateway. Errors say plainly what is wrong and
//! name the secret; nothing here ever logs, formats or returns a value except through
//! [`Secret`].

use crate::{Secret, SecretName};
use keyring_core::{CredentialStore, Entry, Error as KeyringError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The keychain service every Countersign item is filed under.
pub const SERVICE: &str = "countersign";

/// How long one keychain operation may take before it counts as failed.
const DEADLINE: Duration = Duration::from_secs(15);

/// What one keychain item holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// A secret the user stored with `countersign secret set` (API keys, tokens).
    Secret(SecretName),
    /// The OAuth client registration and tokens for one remote server.
    OAuth(String),
    /// A loopback client token Countersign itself uses (the stdio shim's), by name.
    ClientToken(String),
    /// The credential this device got from the hub at enrollment, by device id.
    HubDevice(String),
    /// The person's sign-in to the company's IdP (its ID token), by issuer: what
    /// enterprise-managed authorization trades for access to MCP servers.
    Idp(String),
}

impl Account {
    fn key(&self) -> String {
        match self {
            Account::Secret(name) => format!("secret:{name}"),
            Account::OAuth(server) => format!("oauth:{server}"),
            Account::ClientToken(name) => format!("client-token:{name}"),
            Account::HubDevice(id) => format!("hub-device:{id}"),
            Account::Idp(issuer) => format!("idp:{issuer}"),
        }
    }

    fn parse(key: &str) -> Option<Self> {
        if let Some(name) = key.strip_prefix("secret:") {
            return SecretName::new(name).ok().map(Account::Secret);
        }
        if let Some(issuer) = key.strip_prefix("idp:") {
            return Some(Account::Idp(issuer.to_string()));
        }
        if let Some(id) = key.strip_prefix("hub-device:") {
            return Some(Account::HubDevice(id.to_string()));
        }
        if let Some(name) = key.strip_prefix("client-token:") {
            return Some(Account::ClientToken(name.to_string()));
        }
        key.strip_prefix("oauth:").map(|s| Account::OAuth(s.to_string()))
    }

    fn label(&self) -> String {
        match self {
            Account::Secret(name) => format!("Countersign secret {name}"),
            Account::OAuth(server) => format!("Countersign sign-in to {server}"),
            Account::ClientToken(name) => format!("Countersign client token {name}"),
            Account::HubDevice(id) => format!("Countersign hub credential for device {id}"),
            Account::Idp(issuer) => format!("Countersign sign-in to the identity provider {issuer}"),
        }
    }
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Account::Secret(name) => write!(f, "secret `{name}`"),
            Account::OAuth(server) => write!(f, "the sign-in to `{server}`"),
            Account::ClientToken(name) => write!(f, "the client token `{name}`"),
            Account::HubDevice(_) => write!(f, "this device's hub credential"),
            Account::Idp(issuer) => write!(f, "the sign-in to the identity provider {issuer}"),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("{account} is not in the keychain; add it with `countersign secret set {}`", secret_hint(.account))]
    Missing { account: Account },
    #[error("the keychain is locked, so {account} cannot be read; unlock it (log in to the desktop session or unlock it in your keychain app) and try again")]
    Locked { account: Account },
    #[error("no keychain is available ({reason}), so {account} cannot be read")]
    Unavailable { account: Account, reason: String },
    #[error("the keychain did not answer within {} s while reading {account} (is it waiting for an unlock prompt?)", DEADLINE.as_secs())]
    Timeout { account: Account },
    #[error("the keychain failed on {account}: {reason}")]
    Failed { account: Account, reason: String },
    #[error("{account} is in the keychain already; it was left as it is")]
    Exists { account: Account },
}

fn secret_hint(account: &Account) -> String {
    match account {
        Account::Secret(name) => name.to_string(),
        Account::OAuth(server) => format!("… (or sign in again: `countersign auth login {server}`)"),
        Account::ClientToken(_) => "… (it is made again when the gateway starts)".into(),
        Account::HubDevice(_) => "… (enroll again: `countersign enroll HUB_URL TOKEN`)".into(),
        Account::Idp(_) => "… (sign in again: `countersign auth login SERVER`)".into(),
    }
}

/// The process's connection to the platform store. Only blocking threads touch it: the
/// Secret Service store must never be dropped on an async thread.
static STORE: Mutex<Option<Arc<CredentialStore>>> = Mutex::new(None);

/// A handle on the OS keychain. Cheap to copy; the connection behind it is made once per
/// process and made again when the keychain service restarts.
#[derive(Debug, Clone, Copy)]
pub struct Keychain {
    _private: (),
}

/// Why the platform store could not be opened.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct OpenError(pub String);

impl OpenError {
    /// The error as it applies to reading `account`.
    pub fn for_account(&self, account: &Account) -> VaultError {
        VaultError::Unavailable { account: account.clone(), reason: self.0.clone() }
    }
}

/// The current store, connecting when there is none (or `fresh` asks for a new one).
fn current_store(fresh: bool) -> Result<Arc<CredentialStore>, OpenError> {
    let mut slot = STORE.lock().map_err(|_| OpenError("the keychain connection was poisoned".into()))?;
    if let (Some(store), false) = (slot.as_ref(), fresh) {
        return Ok(store.clone());
    }
    let store = platform_store()?;
    *slot = Some(store.clone());
    Ok(store)
}

/// Errors that mean the keychain service went away under an open connection.
fn is_stale(error: &KeyringError) -> bool {
    let text = match error {
        KeyringError::PlatformFailure(e) | KeyringError::NoStorageAccess(e) => e.to_string(),
        _ => return false,
    };
    ["NoSession", "ServiceUnknown", "NameHasNoOwner", "UnknownObject", "Disconnected", "disconnected"]
        .iter()
        .any(|w| text.contains(w))
}

impl Keychain {
    /// Connects to this platform's keychain. A failure is not remembered, so a keychain
    /// that appears later is found.
    pub async fn open() -> Result<Self, OpenError> {
        let opened = tokio::time::timeout(DEADLINE, tokio::task::spawn_blocking(|| current_store(false))).await;
        match opened {
            Err(_) => Err(OpenError(format!("the keychain service did not answer within {} s", DEADLINE.as_secs()))),
            Ok(Err(join)) => Err(OpenError(format!("the keychain connection failed: {join}"))),
            Ok(Ok(result)) => result.map(|_| Keychain { _private: () }),
        }
    }

    /// Reads one item.
    pub async fn get(&self, account: &Account) -> Result<Secret, VaultError> {
        self.run(account, |entry| entry.get_password().map(Secret::new)).await
    }

    /// Reads one secret, by the name the config uses.
    pub async fn secret(&self, name: &SecretName) -> Result<Secret, VaultError> {
        self.get(&Account::Secret(name.clone())).await
    }

    /// Stores (or replaces) one item.
    pub async fn set(&self, account: &Account, value: &Secret) -> Result<(), VaultError> {
        let value = value.clone();
        self.run(account, move |entry| entry.set_password(value.expose())).await
    }

    /// Stores a new item; one already there (whoever made it, whatever it holds) is left
    /// as it is and the answer is [`VaultError::Exists`]. Used wherever Countersign picks
    /// the name itself, so it can never overwrite an item another server reads.
    pub async fn create(&self, account: &Account, value: &Secret) -> Result<(), VaultError> {
        let value = value.clone();
        let created = self
            .run(account, move |entry| match entry.get_password() {
                Ok(held) => {
                    drop(Secret::new(held));
                    Ok(false)
                }
                Err(KeyringError::NoEntry) => entry.set_password(value.expose()).map(|()| true),
                Err(e) => Err(e),
            })
            .await?;
        if created {
            Ok(())
        } else {
            Err(VaultError::Exists { account: account.clone() })
        }
    }

    /// Stores `value` as a new secret named `base`, or `base-2`, `base-3`… when that name
    /// is taken: by `taken` (a reference in the config, a name chosen already) or by an
    /// item in the keychain. Never overwrites an item. Returns the name used.
    pub async fn store_new(
        &self,
        base: &SecretName,
        value: &Secret,
        taken: impl Fn(&SecretName) -> bool,
    ) -> Result<SecretName, VaultError> {
        for n in 1..100 {
            let name = base.numbered(n);
            if taken(&name) {
                continue;
            }
            let account = Account::Secret(name.clone());
            match self.create(&account, value).await {
                Ok(()) => return Ok(name),
                Err(VaultError::Exists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(VaultError::Failed {
            account: Account::Secret(base.clone()),
            reason: "no free name for it (tried 99); remove unused secrets with `countersign secret rm`".into(),
        })
    }

    /// Removes one item; false when there was none.
    pub async fn delete(&self, account: &Account) -> Result<bool, VaultError> {
        match self.run(account, |entry| entry.delete_credential()).await {
            Ok(()) => Ok(true),
            Err(VaultError::Missing { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every Countersign item in the keychain (accounts only; values are not read).
    pub async fn accounts(&self) -> Result<Vec<Account>, VaultError> {
        let listing = Account::OAuth("*".into());
        let found = with_store(&listing, |store| {
            let spec = HashMap::from([("service", SERVICE)]);
            let entries = Entry::search_in_store(store, &spec)?;
            Ok(entries.iter().filter_map(Entry::get_specifiers).collect::<Vec<_>>())
        })
        .await;
        let mut accounts: Vec<Account> = match found {
            Ok(pairs) => {
                pairs.into_iter().filter(|(s, _)| s == SERVICE).filter_map(|(_, u)| Account::parse(&u)).collect()
            }
            Err(VaultError::Missing { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        accounts.sort();
        accounts.dedup();
        Ok(accounts)
    }

    async fn run<T: Send + 'static>(
        &self,
        account: &Account,
        op: impl Fn(&Entry) -> keyring_core::Result<T> + Send + 'static,
    ) -> Result<T, VaultError> {
        let key = account.key();
        let label = account.label();
        with_store(account, move |store| {
            let entry = if cfg!(target_os = "linux") {
                // The Secret Service shows the label in keychain apps such as Seahorse.
                Entry::new_in_store_with_modifiers(store, SERVICE, &key, &HashMap::from([("label", label.as_str())]))?
            } else {
                Entry::new_in_store(store, SERVICE, &key)?
            };
            op(&entry)
        })
        .await
    }
}

/// Runs `op` against the store on a blocking thread, within the deadline; a connection
/// the keychain service no longer knows is replaced once and `op` tried again.
async fn with_store<T: Send + 'static>(
    account: &Account,
    op: impl Fn(&Arc<CredentialStore>) -> keyring_core::Result<T> + Send + 'static,
) -> Result<T, VaultError> {
    let who = account.clone();
    let work = tokio::task::spawn_blocking(move || {
        let store = current_store(false).map_err(|e| e.for_account(&who))?;
        match op(&store) {
            Err(e) if is_stale(&e) => {
                drop(store);
                let store = current_store(true).map_err(|e| e.for_account(&who))?;
                op(&store).map_err(|e| map_error(&who, e))
            }
            other => other.map_err(|e| map_error(&who, e)),
        }
    });
    match tokio::time::timeout(DEADLINE, work).await {
        Err(_) => Err(VaultError::Timeout { account: account.clone() }),
        Ok(Err(join)) => Err(VaultError::Failed { account: account.clone(), reason: join.to_string() }),
        Ok(Ok(result)) => result,
    }
}

fn map_error(account: &Account, error: KeyringError) -> VaultError {
    let account = account.clone();
    match error {
        KeyringError::NoEntry => VaultError::Missing { account },
        KeyringError::NoStorageAccess(e) => {
            let reason = e.to_string();
            if reason.to_ascii_lowercase().contains("lock") || reason.to_ascii_lowercase().contains("prompt") {
                VaultError::Locked { account }
            } else {
                VaultError::Unavailable { account, reason }
            }
        }
        KeyringError::NoDefaultStore => VaultError::Unavailable { account, reason: "no keychain store".into() },
        KeyringError::BadEncoding(_) => VaultError::Failed { account, reason: "the stored value is not text".into() },
        KeyringError::Ambiguous(_) => {
            VaultError::Failed { account, reason: "the keychain holds more than one item for it".into() }
        }
        other => VaultError::Failed { account, reason: without_secrets(other) },
    }
}

/// A keyring error's message. Variants that carry bytes (`BadDataFormat`) are described
/// by kind only, so no stored value can reach a message.
fn without_secrets(error: KeyringError) -> String {
    match error {
        KeyringError::BadDataFormat(_, e) => format!("the stored value is malformed: {e}"),
        other => other.to_string(),
    }
}

#[cfg(target_os = "linux")]
fn platform_store() -> Result<Arc<CredentialStore>, OpenError> {
    zbus_secret_service_keyring_store::Store::new().map(|s| s as Arc<CredentialStore>).map_err(|e| {
        OpenError(format!(
            "cannot reach the Secret Service on the session D-Bus ({e}); \
             is gnome-keyring or KWallet running in this session?"
        ))
    })
}

#[cfg(target_os = "macos")]
fn platform_store() -> Result<Arc<CredentialStore>, OpenError> {
    apple_native_keyring_store::keychain::Store::new()
        .map(|s| s as Arc<CredentialStore>)
        .map_err(|e| OpenError(format!("cannot open the login Keychain: {e}")))
}

#[cfg(target_os = "windows")]
fn platform_store() -> Result<Arc<CredentialStore>, OpenError> {
    windows_native_keyring_store::Store::new()
        .map(|s| s as Arc<CredentialStore>)
        .map_err(|e| OpenError(format!("cannot open Credential Manager: {e}")))
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn platform_store() -> Result<Arc<CredentialStore>, OpenError> {
    Err(OpenError("this platform has no supported keychain".into()))
}
