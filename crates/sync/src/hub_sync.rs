//! The device's link to the hub: the journal goes up, signed policy comes down. `enroll` trades an enrollment token for this device's
//! credential (kept in the keychain; the hub's URL and the device id in `hub.json`).
//! `sync_once` sends pending records and outcomes in gzip-compressed batches until none
//! are left, marking what the hub acknowledges; the background task does that every
//! interval, backing off exponentially (with jitter) while the hub cannot be reached.
//! Nothing is dropped: unacknowledged records stay in the journal and go again; the hub
//! deduplicates by id. `run_policy` keeps a long poll open for newly published policy
//! bundles, verifies each against the managed key and the rollback floor, and drops the
//! good ones where the policy watcher verifies and loads them.

use countersign_audit::outbox::{AsyncOutbox, Pending};
use countersign_audit::wire::{Ack, Batch};
use countersign_local::config::SyncSettings;
use countersign_local::home::{write_private, Home};
use countersign_vault::{Account, Keychain, Secret};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("this device is not enrolled with a hub (run `countersign enroll HUB_URL TOKEN`)")]
    NotEnrolled,
    #[error("{0}")]
    Keychain(String),
    #[error("the hub at {url} cannot be reached: {message}")]
    Unreachable { url: String, message: String },
    #[error("the hub at {url} answered HTTP {status}: {message}")]
    Refused { url: String, status: u16, message: String },
    #[error(transparent)]
    Outbox(#[from] countersign_audit::outbox::OutboxError),
    #[error("the hub's policy bundle version {version} is refused, the one in force stays: {message}")]
    Bundle { version: i64, message: String },
    #[error("{0}")]
    Local(String),
}

/// Where this device sends its journal, and who the hub says it answers for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubLink {
    pub url: String,
    pub device_id: String,
    /// The person the hub verified for this device (their email, from a sign-in with the
    /// company's IdP): none until one signs in to enroll or bind it. The hub refuses
    /// records naming anyone else, so editing this file changes no record it keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The enterprise agent this host acts as (enrolled with the agent's token): records
    /// name `agent:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The agent's owner, who answers for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Why the hub suspended the agent, while it is: its calls are denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
}

const LINK_FILE: &str = "hub.json";

impl HubLink {
    pub fn load(home: &Home) -> Option<HubLink> {
        std::fs::read_to_string(home.dir().join(LINK_FILE)).ok().and_then(|t| serde_json::from_str(&t).ok())
    }

    /// Writes the link (owner-only).
    pub fn save(&self, home: &Home) -> Result<(), SyncError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| SyncError::Local(e.to_string()))?;
        write_private(&home.dir().join(LINK_FILE), text.as_bytes()).map_err(|e| SyncError::Local(e.to_string()))
    }
}

pub(crate) fn client() -> Result<reqwest::Client, SyncError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| SyncError::Local(e.to_string()))
}

pub(crate) fn unreachable(url: &str, e: reqwest::Error) -> SyncError {
    SyncError::Unreachable { url: url.to_string(), message: e.without_url().to_string() }
}

pub(crate) async fn refused(url: &str, resp: reqwest::Response) -> SyncError {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let message = body.get("error").and_then(|e| e.as_str()).unwrap_or("no reason given").to_string();
    SyncError::Refused { url: url.to_string(), status, message }
}

/// The hub's base URL from what was typed, parsed (never matched by prefix:
/// `http://127.0.0.1@hub.example` names hub.example): https, or http only to this machine
/// (a loopback address or `localhost`); no user info, query or fragment. Errors never
/// repeat the URL, which may hold a password or a token.
pub fn hub_base_url(url: &str) -> Result<String, SyncError> {
    let bad = |why: &str| SyncError::Local(format!("the hub URL {why}"));
    let parsed = url::Url::parse(url.trim()).map_err(|e| bad(&format!("cannot be read: {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("carries user info (`name@` before the host); give the hub's address alone"));
    }
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => {}
        "http" if loopback => {}
        "http" => {
            return Err(bad(&format!(
                "must be https: plain http is allowed only to this machine (127.0.0.1, [::1], localhost), not to {}",
                parsed.host_str().unwrap_or("no host")
            )))
        }
        other => return Err(bad(&format!("must be https, not `{other}:`"))),
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("has a query or fragment; give the hub's base URL"));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// Enrolls this device with the hub at `url` (as the enterprise agent `agent`, whose token
/// it must be); returns the device id.
pub async fn enroll(home: &Home, url: &str, token: &str, name: &str, agent: Option<&str>) -> Result<String, SyncError> {
    let base = hub_base_url(url)?;
    let resp = client()?
        .post(format!("{base}/v1/enroll"))
        .json(&serde_json::json!({ "token": token, "name": name, "agent": agent }))
        .send()
        .await
        .map_err(|e| unreachable(&base, e))?;
    if !resp.status().is_success() {
        return Err(refused(&base, resp).await);
    }
    #[derive(Deserialize)]
    struct Enrolled {
        device_id: String,
        credential: String,
        agent: Option<String>,
        owner: Option<String>,
    }
    let enrolled: Enrolled = resp.json().await.map_err(|e| unreachable(&base, e))?;
    let keychain = Keychain::open().await.map_err(|e| SyncError::Keychain(e.to_string()))?;
    keychain
        .set(&Account::HubDevice(enrolled.device_id.clone()), &Secret::new(enrolled.credential))
        .await
        .map_err(|e| SyncError::Keychain(e.to_string()))?;
    let user = enrolled.agent.as_ref().map(|a| format!("agent:{a}"));
    HubLink {
        url: base,
        device_id: enrolled.device_id.clone(),
        user,
        agent: enrolled.agent,
        owner: enrolled.owner,
        suspended: None,
    }
    .save(home)?;
    Ok(enrolled.device_id)
}

/// What one sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    pub acknowledged_records: u64,
    pub acknowledged_outcomes: u64,
    /// What still waits (records the hub did not acknowledge).
    pub pending_records: u64,
}

/// The hub this device is enrolled with and its credential from the keychain.
pub(crate) async fn enrolled(home: &Home) -> Result<(HubLink, Secret), SyncError> {
    let link = HubLink::load(home).ok_or(SyncError::NotEnrolled)?;
    let keychain = Keychain::open().await.map_err(|e| SyncError::Keychain(e.to_string()))?;
    let credential = keychain
        .get(&Account::HubDevice(link.device_id.clone()))
        .await
        .map_err(|e| SyncError::Keychain(e.to_string()))?;
    Ok((link, credential))
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, SyncError> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).map_err(|e| SyncError::Local(e.to_string()))?;
    enc.finish().map_err(|e| SyncError::Local(e.to_string()))
}

/// Sends everything pending, batch by batch, until nothing is left or the hub fails.
pub async fn sync_once(home: &Home, batch_size: usize) -> Result<SyncReport, SyncError> {
    let (link, credential) = enrolled(home).await?;
    let outbox = AsyncOutbox::open(home.journal_path()).await?;
    let http = client()?;
    let mut report = SyncReport::default();
    loop {
        let batch: Batch = outbox.run(move |o| o.next_batch(batch_size)).await?;
        if batch.records.is_empty() && batch.outcomes.is_empty() {
            break;
        }
        let body = gzip(&serde_json::to_vec(&batch).map_err(|e| SyncError::Local(e.to_string()))?)?;
        let resp = http
            .post(format!("{}/v1/ingest", link.url))
            .bearer_auth(credential.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(&link.url, e))?;
        if !resp.status().is_success() {
            return Err(refused(&link.url, resp).await);
        }
        let ack: Ack = resp.json().await.map_err(|e| unreachable(&link.url, e))?;
        let done: Pending = outbox.run(move |o| o.acknowledge(&batch, &ack)).await?;
        report.acknowledged_records += done.records;
        report.acknowledged_outcomes += done.outcomes;
        if done.records == 0 && done.outcomes == 0 {
            return Err(SyncError::Local("the hub acknowledged nothing of a batch; will try again".into()));
        }
    }
    let pending = outbox.run(|o| o.pending()).await?;
    report.pending_records = pending.records;
    Ok(report)
}

/// Asks the hub who this device answers for (`GET /v1/device`) and keeps its answer in
/// `hub.json`; true when that changed (a person signed in to bind it since, or the
/// binding changed at the hub).
pub async fn refresh_identity(home: &Home) -> Result<bool, SyncError> {
    let (link, credential) = enrolled(home).await?;
    let resp = client()?
        .get(format!("{}/v1/device", link.url))
        .bearer_auth(credential.expose())
        .send()
        .await
        .map_err(|e| unreachable(&link.url, e))?;
    if !resp.status().is_success() {
        return Err(refused(&link.url, resp).await);
    }
    #[derive(Deserialize)]
    struct Device {
        user: Option<String>,
        agent: Option<String>,
        owner: Option<String>,
        suspended: Option<String>,
    }
    let device: Device = resp.json().await.map_err(|e| unreachable(&link.url, e))?;
    let now = HubLink {
        user: device.user,
        agent: device.agent,
        owner: device.owner,
        suspended: device.suspended,
        ..link.clone()
    };
    if now == link {
        return Ok(false);
    }
    now.save(home)?;
    Ok(true)
}

/// Syncs every interval while the gateway runs (when the device is enrolled), backing off
/// exponentially with jitter while the hub fails. Ends when the gateway is gone.
pub async fn run<H: crate::Host>(gateway: std::sync::Weak<H>, home: Home, settings: SyncSettings) {
    let interval = Duration::from_secs(settings.interval_secs);
    let max_backoff = Duration::from_secs(settings.max_backoff_secs.max(settings.interval_secs));
    let mut wait = interval;
    loop {
        tokio::time::sleep(wait).await;
        if gateway.strong_count() == 0 {
            return;
        }
        if HubLink::load(&home).is_none() {
            wait = interval;
            continue;
        }
        let refreshed = refresh_identity(&home).await;
        let Some(g) = gateway.upgrade() else { return };
        match refreshed {
            // Compared with what the gateway names now, not with the file: a `countersign
            // whoami` may have written the hub's answer there first.
            Ok(_) => {
                g.hub_standing(None);
                g.identity_changed();
            }
            // The hub revoked this device (its person deprovisioned): no more syncing
            // until enrolled again; local policy stays in force.
            Err(SyncError::Refused { status: 401, message, .. }) if message.contains("revoked") => {
                g.hub_standing(Some(message));
                drop(g);
                wait = interval;
                continue;
            }
            Err(e) => tracing::debug!("who this device answers for was not refreshed: {e}"),
        }
        drop(g);
        match sync_once(&home, settings.batch_size).await {
            Ok(report) => {
                if report.acknowledged_records > 0 {
                    tracing::debug!(records = report.acknowledged_records, "audit records synced to the hub");
                }
                wait = interval;
            }
            Err(e) => {
                // Twice the last wait, up to the cap, less up to a quarter at random so many
                // laptops coming back at once do not all retry together.
                let doubled = (wait * 2).min(max_backoff);
                let jitter = Duration::from_millis(rand::random::<u64>() % (doubled.as_millis() as u64 / 4 + 1));
                wait = doubled.saturating_sub(jitter).max(Duration::from_secs(1));
                tracing::warn!("audit sync: {e}; next try in {} s", wait.as_secs());
            }
        }
    }
}

/// The newest checkpoint the hub signed for this device (`None` when it holds none yet),
/// for `countersign audit verify` to compare with the journal: unlike the copies kept in
/// the journal, nobody with only this laptop's disk can change it.
pub async fn hub_checkpoint(home: &Home) -> Result<Option<countersign_audit::checkpoint::Checkpoint>, SyncError> {
    let (link, credential) = enrolled(home).await?;
    let resp = client()?
        .get(format!("{}/v1/checkpoint", link.url))
        .bearer_auth(credential.expose())
        .send()
        .await
        .map_err(|e| unreachable(&link.url, e))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        return Err(refused(&link.url, resp).await);
    }
    resp.json().await.map(Some).map_err(|e| unreachable(&link.url, e))
}

/// Asks the hub for a policy bundle newer than the one in force, waiting up to
/// `wait_secs` for one to be published. What comes back is verified here first, against
/// the managed key and the rollback floor (the version in force): an older version than
/// the floor, an expired, unsigned or wrongly signed bundle is refused and never written.
/// A good one is written where the policy watcher verifies it again and loads it. Returns
/// the new version, if one came.
pub async fn fetch_policy(
    home: &Home,
    bundles: &countersign_local::managed_bundle::BundleKeeper,
    wait_secs: u64,
) -> Result<Option<i64>, SyncError> {
    let (link, credential) = enrolled(home).await?;
    let floor = bundles.floor();
    let mut req = client()?
        .get(format!("{}/v1/policy/bundle", link.url))
        .query(&[("wait", wait_secs)])
        .bearer_auth(credential.expose());
    // The version in force, never the delivered file's own say-so (an edited file must
    // not stop deliveries).
    if let Some(v) = floor {
        req = req.header(reqwest::header::IF_NONE_MATCH, format!("\"{v}\""));
    }
    let resp = req.send().await.map_err(|e| unreachable(&link.url, e))?;
    match resp.status() {
        reqwest::StatusCode::NOT_MODIFIED | reqwest::StatusCode::NOT_FOUND => return Ok(None),
        s if !s.is_success() => return Err(refused(&link.url, resp).await),
        _ => {}
    }
    #[derive(Deserialize)]
    struct Bundle {
        version: i64,
        document: String,
        signature: String,
    }
    let bundle: Bundle = resp.json().await.map_err(|e| unreachable(&link.url, e))?;
    let key = countersign_local::managed_files::bundle_key().map_err(|e| SyncError::Local(e.to_string()))?;
    let checked = countersign_policy::verify_bundle(
        bundle.document.as_bytes(),
        Some(&bundle.signature),
        key.as_deref(),
        countersign_local::clock::now_unix(),
        floor,
    )
    .map_err(|e| SyncError::Bundle { version: bundle.version, message: e.to_string() })?;
    if checked.header.version as i64 != bundle.version {
        return Err(SyncError::Bundle {
            version: bundle.version,
            message: format!("the signed document says version {}", checked.header.version),
        });
    }
    let path = countersign_local::managed_files::bundle_path(home);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| SyncError::Local(format!("{}: {e}", dir.display())))?;
    }
    let mut sig = path.as_os_str().to_owned();
    sig.push(".minisig");
    // The signature first: the watcher reloads once both are in place.
    write_private(std::path::Path::new(&sig), bundle.signature.as_bytes())
        .map_err(|e| SyncError::Local(e.to_string()))?;
    write_private(&path, bundle.document.as_bytes()).map_err(|e| SyncError::Local(e.to_string()))?;
    tracing::info!(version = bundle.version, "policy bundle received from the hub");
    Ok(Some(bundle.version))
}

/// Keeps a long poll open to the hub for new policy while the gateway runs (when the
/// device is enrolled), backing off while the hub cannot be reached or offers a bundle
/// that is refused (each refusal recorded once in the journal).
pub async fn run_policy<H: crate::Host>(gateway: std::sync::Weak<H>, home: Home) {
    let mut backoff = Duration::from_secs(2);
    let mut last_refusal: Option<String> = None;
    loop {
        let Some(bundles) = gateway.upgrade().map(|s| s.bundles()) else { return };
        if HubLink::load(&home).is_none() {
            // Enrollment may happen while the gateway runs; a file check a second is cheap.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        match fetch_policy(&home, &bundles, 25).await {
            Ok(_) => backoff = Duration::from_secs(2),
            Err(e) => {
                if let SyncError::Bundle { .. } = &e {
                    let why = e.to_string();
                    tracing::error!("{why}");
                    if last_refusal.as_ref() != Some(&why) {
                        if let Some(host) = gateway.upgrade() {
                            host.record_event(countersign_audit::Decision::Deny, "policy-layer", why.clone());
                        }
                        last_refusal = Some(why);
                    }
                } else {
                    tracing::debug!("policy fetch: {e}; next try in {} s", backoff.as_secs());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_url_is_parsed_not_matched_by_prefix() {
        for (typed, base) in [
            ("https://hub.example.com", "https://hub.example.com"),
            ("https://hub.example.com/", "https://hub.example.com"),
            ("HTTPS://Hub.Example.com:8443/countersign/", "https://hub.example.com:8443/countersign"),
            ("http://127.0.0.1:47900", "http://127.0.0.1:47900"),
            ("http://127.0.0.2:47900/", "http://127.0.0.2:47900"),
            ("http://localhost:47900", "http://localhost:47900"),
            ("http://[::1]:47900", "http://[::1]:47900"),
        ] {
            assert_eq!(hub_base_url(typed).unwrap(), base, "{typed}");
        }
        for (typed, why) in [
            ("http://127.0.0.1@hub.example.com", "user info"),
            ("http://127.0.0.1:x@192.0.2.7:47900", "user info"),
            ("https://it:hunter2@hub.example.com", "user info"),
            ("http://127.0.0.1.nip.io", "must be https"),
            ("http://localhost.hub.example.com", "must be https"),
            ("http://localhostevil.example", "must be https"),
            ("http://hub.example.com", "must be https"),
            ("http://192.0.2.7:47900", "must be https"),
            ("ftp://hub.example.com", "must be https, not `ftp:`"),
            ("file:///etc/passwd", "must be https"),
            ("hub.example.com", "cannot be read"),
            ("https://hub.example.com/?token=cse_1", "query"),
            ("https://hub.example.com/#x", "fragment"),
        ] {
            let err = hub_base_url(typed).unwrap_err().to_string();
            assert!(err.contains(why), "{typed}: {err}");
            assert!(!err.contains("hunter2") && !err.contains("cse_1"), "{typed}: {err}");
        }
    }
}

#[cfg(test)]
#[path = "hub_sync_tests.rs"]
mod sync_tests;
