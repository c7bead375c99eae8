//! Enrollment bound to a verified person: the device side of the hub's device
//! authorization grant (RFC 8628). [`ask`] gets a user code and the page where the person
//! signs in with the company's IdP and confirms this device; [`wait`] polls the hub at the
//! interval it names (slower on `slow_down`) until the person answered or the code
//! expired, then keeps the credential in the keychain and the hub's link, now naming the
//! verified person, in `hub.json`. A device already enrolled by token asks with its
//! credential and is bound to its person instead (it keeps its credential).
//!
//! [`Nudge`] is the loopback address the hub's page sends the browser back to once the
//! person answered: it carries nothing (no code, no token) and only makes [`wait`] poll
//! at once instead of at the next interval, so a forged visit costs one early poll.
//!
//! It never writes the device code or the credential anywhere but the keychain, never
//! prints the device code, and never follows a redirect from the hub.

use crate::hub_sync::{client, enrolled, hub_base_url, refused, unreachable, HubLink, SyncError};
use countersign_local::home::Home;
use countersign_vault::{Account, Keychain, Secret};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// The grant type of RFC 8628's token request.
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// What the hub answered: where the person goes and what code they confirm.
#[derive(Debug, Deserialize)]
pub struct Asked {
    #[serde(skip)]
    base: String,
    device_code: String,
    /// `ABCD-EFGH`, as the person sees it on the hub's page.
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    interval: u64,
    /// Whether this device is enrolled already and asks to be bound to its person.
    #[serde(skip)]
    pub binds: bool,
}

impl std::fmt::Debug for Nudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nudge").field("return_to", &self.return_to).finish()
    }
}

/// The enrollment done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub device_id: String,
    /// The verified person (email) the device answers for now.
    pub user: String,
    /// Whether an enrolled device was bound rather than a new one enrolled.
    pub bound: bool,
}

/// Asks the hub at `url` to enroll this device (or bind it, when it is enrolled with that
/// hub already) as the person who will sign in and confirm it.
pub async fn ask(home: &Home, url: &str, name: &str, os_user: &str, nudge: Option<&Nudge>) -> Result<Asked, SyncError> {
    let base = hub_base_url(url)?;
    let mut body = serde_json::json!({ "name": name, "os_user": os_user });
    if let Some(n) = nudge {
        body["return_to"] = serde_json::json!(n.return_to);
    }
    let url = format!("{base}/v1/enroll/device_authorization");
    let http = client()?;
    let mut binds = false;
    let mut resp = None;
    if HubLink::load(home).is_some_and(|l| l.url == base) {
        let (_, credential) = enrolled(home).await?;
        let r = http.post(&url).json(&body).bearer_auth(credential.expose()).send().await;
        let r = r.map_err(|e| unreachable(&base, e))?;
        if r.status().is_success() {
            binds = true;
            resp = Some(r);
        } else {
            match refused(&base, r).await {
                // Revoked: this device enrolls afresh (a new device at the hub).
                SyncError::Refused { status: 401, message, .. } if message.contains("revoked") => {}
                other => return Err(other),
            }
        }
    }
    let resp = match resp {
        Some(r) => r,
        None => {
            let r = http.post(&url).json(&body).send().await.map_err(|e| unreachable(&base, e))?;
            if !r.status().is_success() {
                return Err(refused(&base, r).await);
            }
            r
        }
    };
    let mut asked: Asked = resp.json().await.map_err(|e| unreachable(&base, e))?;
    asked.base = base;
    asked.binds = binds;
    Ok(asked)
}

#[derive(Deserialize)]
struct Granted {
    device_id: String,
    user: String,
    credential: Option<String>,
}

#[derive(Deserialize)]
struct Refusal {
    error: String,
    error_description: Option<String>,
}

/// Polls until the person answered (or the code expired), then keeps what the hub gave.
pub async fn wait(home: &Home, asked: Asked, nudge: Option<&Nudge>) -> Result<Enrolled, SyncError> {
    let base = asked.base.clone();
    let http = client()?;
    let deadline = Instant::now() + Duration::from_secs(asked.expires_in);
    let mut interval = Duration::from_secs(asked.interval.max(1));
    loop {
        let pause = tokio::time::sleep(interval);
        match nudge {
            Some(n) => {
                tokio::select! {
                    _ = pause => {}
                    _ = n.arrived.notified() => {}
                }
            }
            None => pause.await,
        }
        if Instant::now() > deadline {
            return Err(SyncError::Local(
                "no one approved this device within the code's time; run `countersign enroll` again".into(),
            ));
        }
        let resp = http
            .post(format!("{base}/v1/enroll/token"))
            .json(&serde_json::json!({ "grant_type": GRANT_TYPE, "device_code": asked.device_code }))
            .send()
            .await
            .map_err(|e| unreachable(&base, e))?;
        if resp.status().is_success() {
            let granted: Granted = resp.json().await.map_err(|e| unreachable(&base, e))?;
            return keep(home, &base, granted, asked.binds).await;
        }
        if resp.status() != reqwest::StatusCode::BAD_REQUEST {
            return Err(refused(&base, resp).await);
        }
        let status = resp.status().as_u16();
        let said: Refusal = resp.json().await.map_err(|e| unreachable(&base, e))?;
        match said.error.as_str() {
            "authorization_pending" => {}
            "slow_down" => interval += Duration::from_secs(5),
            _ => {
                let message = match said.error.as_str() {
                    "access_denied" => "the person who signed in denied this device".to_string(),
                    "expired_token" => {
                        "no one approved this device in time; run `countersign enroll` again".to_string()
                    }
                    other => format!("{other}: {}", said.error_description.unwrap_or_default()),
                };
                return Err(SyncError::Refused { url: base, status, message });
            }
        }
    }
}

async fn keep(home: &Home, base: &str, granted: Granted, binds: bool) -> Result<Enrolled, SyncError> {
    if let Some(credential) = granted.credential {
        let keychain = Keychain::open().await.map_err(|e| SyncError::Keychain(e.to_string()))?;
        keychain
            .set(&Account::HubDevice(granted.device_id.clone()), &Secret::new(credential))
            .await
            .map_err(|e| SyncError::Keychain(e.to_string()))?;
    } else if !binds {
        return Err(SyncError::Local("the hub enrolled this device but sent no credential".into()));
    }
    HubLink {
        url: base.to_string(),
        device_id: granted.device_id.clone(),
        user: Some(granted.user.clone()),
        agent: None,
        owner: None,
        suspended: None,
    }
    .save(home)?;
    Ok(Enrolled { device_id: granted.device_id, user: granted.user, bound: binds })
}

/// The loopback address the hub's page sends the browser back to once the person
/// answered: a listener on 127.0.0.1 that answers every visit with a fixed page and
/// makes [`wait`] poll at once. Stops when dropped.
pub struct Nudge {
    return_to: String,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// The path the hub's page sends the browser to.
const NUDGE_PATH: &str = "/countersign/enrolled";

const PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Countersign</title></head>\
<body><p>Countersign has your answer. You can close this tab and go back to the terminal.</p></body></html>";

impl Nudge {
    pub async fn bind() -> Result<Nudge, SyncError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| SyncError::Local(format!("loopback listener: {e}")))?;
        let port = listener.local_addr().map_err(|e| SyncError::Local(e.to_string()))?.port();
        let arrived = Arc::new(Notify::new());
        let notify = arrived.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let notify = notify.clone();
                tokio::spawn(async move {
                    let mut head = Vec::with_capacity(1024);
                    let mut buf = [0u8; 1024];
                    let read = async {
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                            match conn.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                    };
                    if tokio::time::timeout(Duration::from_secs(5), read).await.is_err() {
                        return;
                    }
                    let ours = head.starts_with(format!("GET {NUDGE_PATH} ").as_bytes());
                    let (status, body) = if ours { ("200 OK", PAGE) } else { ("404 Not Found", "not here") };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
                         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    if ours {
                        notify.notify_one();
                    }
                });
            }
        });
        Ok(Nudge { return_to: format!("http://127.0.0.1:{port}{NUDGE_PATH}"), arrived, task })
    }
}

impl Drop for Nudge {
    fn drop(&mut self) {
        self.task.abort();
    }
}
