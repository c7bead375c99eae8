//! A connection to the gateway of this data folder that is proven to be that gateway
//! before anything is sent on it. `gateway.json` names an address, but after a crash any
//! local process may bind that port and wait for a token. So the stdio shim, the CLI and
//! the desktop app open one HTTP/2 connection, ask the peer to answer a fresh random
//! challenge with an HMAC keyed by the control token (a 0600 file only this user and the
//! gateway read), and send their requests, tokens included, only on that same connection
//! once the answer checks. A connection that breaks is replaced by a new one, proven the
//! same way: nothing ever goes over an unproven connection.
//!
//! Must never: send a request before the proof, or accept a proof not made with the key.

use crate::home::Home;
use axum::http::{Request, Response, StatusCode};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sha2::Sha256;
use std::net::SocketAddr;
use std::time::Duration;

/// Where the gateway answers the challenge (no token needed: it proves, it grants nothing).
pub const HELLO_PATH: &str = "/_countersign/hello";
const CONTEXT: &[u8] = b"countersign-gateway-hello:";
/// How long connecting and proving may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no Countersign gateway is running for {0}")]
    NotRunning(String),
    #[error("the gateway's control token cannot be read: {0}")]
    NoKey(String),
    #[error("cannot reach the Countersign gateway at {addr}: {why}")]
    Unreachable { addr: SocketAddr, why: String },
    #[error(
        "the process listening on {0} did not prove it is this data folder's Countersign gateway (a stale \
         gateway.json after a crash, or another program on its port); nothing was sent to it"
    )]
    Impostor(SocketAddr),
    #[error("the connection to the gateway broke: {0}")]
    Broken(String),
}

/// The proof a gateway listening on `addr` gives for `nonce`: HMAC-SHA256 under the
/// control token over the challenge and the address. The address is in it so that a
/// process holding a stale port cannot relay the challenge to the gateway's new one and
/// pass its answer off as its own.
pub fn prove(key: &str, nonce: &str, addr: SocketAddr) -> String {
    prove_at(key, nonce, &addr.to_string())
}

/// The same proof for a place that is not a TCP address: the shim socket names its own
/// (`place`), so no answer made for one place passes for another.
pub fn prove_at(key: &str, nonce: &str, place: &str) -> String {
    hex::encode(mac(key, nonce, place).map(|m| m.finalize().into_bytes().to_vec()).unwrap_or_default())
}

fn mac(key: &str, nonce: &str, place: &str) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).ok()?;
    mac.update(CONTEXT);
    mac.update(place.as_bytes());
    mac.update(b"\0");
    mac.update(nonce.as_bytes());
    Some(mac)
}

fn check(key: &str, nonce: &str, addr: SocketAddr, proof: &str) -> bool {
    check_at(key, nonce, &addr.to_string(), proof)
}

/// Whether `proof` is the proof for `nonce` at `place` under `key` (constant time).
pub fn check_at(key: &str, nonce: &str, place: &str, proof: &str) -> bool {
    let Some(mac) = mac(key, nonce, place) else { return false };
    hex::decode(proof).is_ok_and(|p| mac.verify_slice(&p).is_ok())
}

/// One proven connection to the gateway, reopened (and proven again) when it breaks.
pub struct GatewayLink {
    addr: SocketAddr,
    key: String,
    conn: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl GatewayLink {
    /// The link to the gateway `gateway.json` names in `home`; nothing is connected yet.
    pub fn for_home(home: &Home) -> Result<GatewayLink, LinkError> {
        let runtime = home.read_runtime().ok_or_else(|| LinkError::NotRunning(home.dir().display().to_string()))?;
        let key = home.read_control_token().ok_or_else(|| LinkError::NoKey(home.dir().display().to_string()))?;
        Ok(GatewayLink { addr: runtime.listen, key, conn: tokio::sync::Mutex::new(None) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A proven connection, opening (and proving) one when there is none or it broke.
    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, LinkError> {
        let mut slot = self.conn.lock().await;
        if let Some(send) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(send.clone());
        }
        *slot = None;
        let send = tokio::time::timeout(CONNECT_TIMEOUT, self.connect_and_prove())
            .await
            .map_err(|_| LinkError::Unreachable { addr: self.addr, why: "no answer within 5s".into() })??;
        *slot = Some(send.clone());
        Ok(send)
    }

    async fn connect_and_prove(&self) -> Result<SendRequest<Full<Bytes>>, LinkError> {
        let unreachable = |why: String| LinkError::Unreachable { addr: self.addr, why };
        let tcp = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new());
        let (mut send, conn) =
            builder.handshake(TokioIo::new(tcp)).await.map_err(|_| LinkError::Impostor(self.addr))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let nonce = crate::home::random_token("");
        let body = serde_json::json!({ "nonce": nonce }).to_string();
        let req = Request::post(self.url(HELLO_PATH))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| unreachable(e.to_string()))?;
        send.ready().await.map_err(|_| LinkError::Impostor(self.addr))?;
        let resp = send.send_request(req).await.map_err(|_| LinkError::Impostor(self.addr))?;
        if resp.status() != StatusCode::OK {
            return Err(LinkError::Impostor(self.addr));
        }
        let answer = read_body(resp.into_body(), 4096).await.map_err(|_| LinkError::Impostor(self.addr))?;
        let proof = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v.get("proof").and_then(|p| p.as_str()).map(str::to_string))
            .unwrap_or_default();
        if !check(&self.key, &nonce, self.addr, &proof) {
            return Err(LinkError::Impostor(self.addr));
        }
        Ok(send)
    }

    /// Sends one request on the proven connection. A broken connection is forgotten, so
    /// the next request opens and proves a new one.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, LinkError> {
        let mut send = self.sender().await?;
        let result = async {
            send.ready().await?;
            send.send_request(req).await
        }
        .await;
        result.map_err(|e| {
            if let Ok(mut slot) = self.conn.try_lock() {
                *slot = None;
            }
            LinkError::Broken(e.to_string())
        })
    }

    /// A control request with the control token: the status and the parsed JSON (or the
    /// text) of the answer.
    pub async fn control(
        &self,
        method: axum::http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, Bytes), LinkError> {
        let mut req = Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("authorization", format!("Bearer {}", self.key));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = req.body(Full::new(body)).map_err(|e| LinkError::Broken(e.to_string()))?;
        let resp = self.send(req).await?;
        let status = resp.status();
        let bytes = read_body(resp.into_body(), 16 * 1024 * 1024).await.map_err(LinkError::Broken)?;
        Ok((status, bytes))
    }
}

/// A whole body, at most `limit` bytes.
pub async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, String> {
    Limited::new(body, limit).collect().await.map(|c| c.to_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_makes_a_proof_and_only_for_the_address_dialed() {
        let here: SocketAddr = "127.0.0.1:47800".parse().unwrap();
        let elsewhere: SocketAddr = "127.0.0.1:47801".parse().unwrap();
        let proof = prove("csc_key", "n1", here);
        assert!(check("csc_key", "n1", here, &proof));
        assert!(!check("csc_other", "n1", here, &proof), "another key");
        assert!(!check("csc_key", "n2", here, &proof), "another challenge");
        assert!(!check("csc_key", "n1", elsewhere, &proof), "relayed from another port");
        assert!(!check("csc_key", "n1", here, ""), "no proof");
        assert!(!check("csc_key", "n1", here, "zz"));
        // A proof for the shim socket is no proof for a port, nor the other way round.
        let socket = prove_at("csc_key", "n1", "shim-socket");
        assert!(check_at("csc_key", "n1", "shim-socket", &socket));
        assert!(!check("csc_key", "n1", here, &socket));
        assert!(!check_at("csc_key", "n1", "shim-socket", &proof));
    }
}
