//! The loopback listener a sign-in's redirect comes back to: 127.0.0.1 on a free port, one
//! exact path. Any process on this machine, and any web page that can make the browser
//! send a request, can reach it; so it hands the sign-in only a redirect that came to the
//! address the redirect URI names (its `Host`), is well formed (no parameter twice) and
//! carries this sign-in's `state`. Every other request is answered in its own tab with a
//! page saying why, and the sign-in keeps waiting for the right one until its deadline. An
//! `error` that carries the right `state` is the authorization server's answer and is
//! handed on (it ends the sign-in).
//!
//! It must never end or disturb a sign-in on a request without the sign-in's `state`,
//! never put what a request carried into a page (pages are fixed text), and never log a
//! query (it holds the authorization code).

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

/// The path the authorization server redirects the browser to; any other path is refused.
pub const CALLBACK_PATH: &str = "/countersign/oauth/callback";

/// What the authorization server said, in a redirect that carries this sign-in's `state`.
#[derive(PartialEq, Eq)]
pub enum Redirect {
    /// The authorization code, and the `iss` the redirect names (RFC 9207), if any.
    Code { code: String, iss: Option<String> },
    /// The authorization server refused (`error`, RFC 6749 §4.1.2.1), in printable ASCII.
    Refused { error: String, description: Option<String> },
}

impl std::fmt::Debug for Redirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Redirect::Code { iss, .. } => {
                f.debug_struct("Code").field("code", &"[REDACTED]").field("iss", iss).finish()
            }
            Redirect::Refused { error, description } => {
                f.debug_struct("Refused").field("error", error).field("description", description).finish()
            }
        }
    }
}

/// Why a request to the listener was not handed to the sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` is not the loopback address and port of the redirect URI (a web page
    /// reaching the listener through a name that resolves to 127.0.0.1, or no `Host`).
    WrongHost,
    /// A parameter appears more than once (RFC 6749 §3.1 forbids it).
    Repeated,
    /// No sign-in has been started on this listener yet.
    NotStarted,
    /// No `state`: not a redirect of this sign-in.
    NoState,
    /// Another `state`: a redirect of another sign-in, or forged.
    WrongState,
    /// This sign-in's `state`, but neither a code nor an error.
    NoCode,
}

impl Refusal {
    /// What the log says (never the query).
    pub fn why(self) -> &'static str {
        match self {
            Refusal::WrongHost => "its Host is not the redirect address",
            Refusal::Repeated => "it repeats a parameter",
            Refusal::NotStarted => "no sign-in is waiting yet",
            Refusal::NoState => "it carries no state",
            Refusal::WrongState => "its state is not this sign-in's",
            Refusal::NoCode => "it carries neither a code nor an error",
        }
    }

    fn page(self) -> Page {
        match self {
            Refusal::WrongHost => Page::new(
                "Not a sign-in address",
                "This request did not come to the address Countersign gave the authorization server, so it was \
                 ignored. If you are signing in, go back to the sign-in tab.",
            ),
            Refusal::NotStarted => {
                Page::new("No sign-in yet", "Countersign is not waiting for a sign-in here yet; nothing was done.")
            }
            Refusal::Repeated | Refusal::NoState | Refusal::WrongState | Refusal::NoCode => Page::new(
                "Not this sign-in",
                "This redirect does not belong to the sign-in Countersign is waiting for, so it was ignored. \
                 The sign-in is still waiting; finish it in the tab Countersign opened.",
            ),
        }
    }
}

/// A page shown in the browser: fixed text only, never anything a request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    title: &'static str,
    text: &'static str,
}

impl Page {
    pub const fn new(title: &'static str, text: &'static str) -> Self {
        Page { title, text }
    }

    fn respond(&self, status: StatusCode) -> Response {
        let body = format!(
            "<!doctype html><meta charset=utf-8><title>{0}</title><h1>{0}</h1><p>{1}</p>",
            self.title, self.text
        );
        (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::REFERRER_POLICY, "no-referrer"),
                (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
                (header::X_FRAME_OPTIONS, "DENY"),
            ],
            Html(body),
        )
            .into_response()
    }
}

/// A redirect of this sign-in; the page its tab shows is the sign-in's to choose.
pub struct Arrival {
    pub redirect: Redirect,
    answer: oneshot::Sender<Page>,
}

impl Arrival {
    /// Shows `page` in the tab the redirect came from.
    pub fn answer(self, page: Page) {
        let _ = self.answer.send(page);
    }
}

struct Shared {
    /// `127.0.0.1:PORT`, as the redirect URI names it.
    host: String,
    state: OnceLock<String>,
    arrivals: mpsc::Sender<Arrival>,
    /// How many requests were ignored (the first few are logged, so a flood cannot fill
    /// the log).
    ignored: AtomicUsize,
}

/// How many ignored requests one listener logs.
const LOGGED: usize = 10;

/// The running listener.
pub struct Loopback {
    redirect_uri: String,
    shared: Arc<Shared>,
    arrivals: mpsc::Receiver<Arrival>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Loopback {
    /// Listens on 127.0.0.1, on a free port.
    pub async fn bind() -> Result<Self, String> {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("loopback listener: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let (tx, rx) = mpsc::channel::<Arrival>(4);
        let host = format!("127.0.0.1:{port}");
        let shared =
            Arc::new(Shared { host: host.clone(), state: OnceLock::new(), arrivals: tx, ignored: AtomicUsize::new(0) });
        let app = axum::Router::new()
            .route(CALLBACK_PATH, axum::routing::get(on_callback))
            .fallback(on_other)
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Loopback { redirect_uri: format!("http://{host}{CALLBACK_PATH}"), shared, arrivals: rx, stop, task })
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// From now on, a redirect carrying `state` is handed on; set once per listener.
    pub fn expect_state(&self, state: String) -> Result<(), String> {
        self.shared.state.set(state).map_err(|_| "the sign-in listener already waits for a sign-in".to_string())
    }

    /// The next redirect that carries this sign-in's `state` (others are answered and
    /// dropped by the listener itself).
    pub async fn next(&mut self) -> Option<Arrival> {
        self.arrivals.recv().await
    }

    /// Stops taking connections, letting the last page be written first.
    pub async fn close(self) {
        drop(self.arrivals);
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn on_callback(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> Response {
    let hosts: Vec<&str> = headers.get_all(header::HOST).iter().filter_map(|v| v.to_str().ok()).collect();
    let host = match hosts.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    let authority = uri.authority().map(|a| a.as_str());
    let judged =
        judge(host, authority, q.as_deref().unwrap_or(""), &shared.host, shared.state.get().map(String::as_str));
    let redirect = match judged {
        Ok(redirect) => redirect,
        Err(refusal) => {
            let n = shared.ignored.fetch_add(1, Ordering::Relaxed);
            if n < LOGGED {
                tracing::warn!("the sign-in listener ignored a request: {}", refusal.why());
            } else if n == LOGGED {
                tracing::warn!("the sign-in listener keeps ignoring requests; no more are logged");
            }
            let status =
                if refusal == Refusal::WrongHost { StatusCode::MISDIRECTED_REQUEST } else { StatusCode::BAD_REQUEST };
            return refusal.page().respond(status);
        }
    };
    let (answer, reply) = oneshot::channel();
    if shared.arrivals.send(Arrival { redirect, answer }).await.is_err() {
        return SIGN_IN_OVER.respond(StatusCode::GONE);
    }
    match reply.await {
        Ok(page) => page.respond(StatusCode::OK),
        Err(_) => SIGN_IN_OVER.respond(StatusCode::GONE),
    }
}

async fn on_other() -> Response {
    Page::new("Not a sign-in address", "This address only takes a sign-in redirect; nothing was done.")
        .respond(StatusCode::NOT_FOUND)
}

const SIGN_IN_OVER: Page = Page::new("Sign-in over", "This sign-in is over; start it again from Countersign.");

/// Decides what a request to the callback path is: this sign-in's redirect, or refused.
/// `host` is the request's one `Host` header (`None` when absent or repeated);
/// `authority` the request target's, if it was sent in absolute form.
pub fn judge(
    host: Option<&str>,
    authority: Option<&str>,
    query: &str,
    own_host: &str,
    state: Option<&str>,
) -> Result<Redirect, Refusal> {
    if host != Some(own_host) || authority.is_some_and(|a| a != own_host) {
        return Err(Refusal::WrongHost);
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    for (i, (key, _)) in params.iter().enumerate() {
        if params[..i].iter().any(|(k, _)| k == key) {
            return Err(Refusal::Repeated);
        }
    }
    let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let got = get("state").ok_or(Refusal::NoState)?;
    let expected = state.ok_or(Refusal::NotStarted)?;
    if !bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(Refusal::WrongState);
    }
    if let Some(error) = get("error") {
        return Ok(Redirect::Refused {
            error: printable(error, 64),
            description: get("error_description").map(|d| printable(d, 200)),
        });
    }
    match get("code") {
        Some(code) if !code.is_empty() => {
            Ok(Redirect::Code { code: code.to_string(), iss: get("iss").map(str::to_string) })
        }
        _ => Err(Refusal::NoCode),
    }
}

/// `text` as RFC 6749 allows `error` and `error_description` to be (printable ASCII),
/// anything else shown as `?`, cut at `max` characters: it is shown in a terminal.
fn printable(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).map(|c| if (' '..='~').contains(&c) { c } else { '?' }).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "127.0.0.1:4711";
    const STATE: &str = "the-real-state-0123456789";

    fn j(host: Option<&str>, query: &str) -> Result<Redirect, Refusal> {
        judge(host, None, query, HOST, Some(STATE))
    }

    #[test]
    fn i15_11_only_this_sign_ins_redirect_to_this_address_is_handed_on() {
        assert_eq!(
            j(Some(HOST), &format!("code=abc&state={STATE}&iss=https%3A%2F%2Fas.example")),
            Ok(Redirect::Code { code: "abc".into(), iss: Some("https://as.example".into()) })
        );
        assert_eq!(j(Some(HOST), "error=access_denied"), Err(Refusal::NoState));
        assert_eq!(j(Some(HOST), "code=junk&state=junk"), Err(Refusal::WrongState));
        assert_eq!(j(Some(HOST), "error=access_denied&state=junk"), Err(Refusal::WrongState));
        assert_eq!(j(Some(HOST), &format!("state={STATE}")), Err(Refusal::NoCode));
        assert_eq!(j(Some(HOST), &format!("code=&state={STATE}")), Err(Refusal::NoCode));
        assert_eq!(j(Some(HOST), &format!("code=a&state=junk&state={STATE}")), Err(Refusal::Repeated));
        assert_eq!(j(Some(HOST), &format!("code=a&code=b&state={STATE}")), Err(Refusal::Repeated));
        assert_eq!(judge(Some(HOST), None, "code=a&state=x", HOST, None), Err(Refusal::NotStarted));
    }

    #[test]
    fn i15_11_a_request_to_another_host_is_refused_even_with_the_state() {
        let q = format!("error=access_denied&state={STATE}");
        for host in [None, Some("evil.example:4711"), Some("localhost:4711"), Some("127.0.0.1:4712"), Some("127.0.0.1")]
        {
            assert_eq!(j(host, &q), Err(Refusal::WrongHost), "{host:?}");
        }
        assert_eq!(judge(Some(HOST), Some("evil.example:4711"), &q, HOST, Some(STATE)), Err(Refusal::WrongHost));
        assert!(judge(Some(HOST), Some(HOST), &q, HOST, Some(STATE)).is_ok());
    }

    #[test]
    fn i15_11_an_error_with_the_state_is_handed_on_printable_only() {
        let q = format!("error=access_denied&error_description=no%1b%5B2J%0Athanks&state={STATE}");
        assert_eq!(
            j(Some(HOST), &q),
            Ok(Redirect::Refused { error: "access_denied".into(), description: Some("no?[2J?thanks".into()) })
        );
        let long = "x".repeat(300);
        let Ok(Redirect::Refused { description: Some(d), .. }) =
            j(Some(HOST), &format!("error=e&error_description={long}&state={STATE}"))
        else {
            panic!("not refused")
        };
        assert_eq!(d.chars().count(), 201);
    }

    #[tokio::test]
    async fn i15_11_bad_requests_are_answered_and_the_listener_keeps_waiting() {
        let mut lb = Loopback::bind().await.unwrap();
        lb.expect_state(STATE.into()).unwrap();
        let base = lb.redirect_uri().to_string();
        let http = reqwest::Client::new();
        for (url, host) in [
            (format!("{base}?error=access_denied"), None),
            (format!("{base}?code=junk&state=junk"), None),
            (format!("{base}?error=access_denied&state={STATE}"), Some("evil.example")),
            (base.replace(CALLBACK_PATH, "/elsewhere") + &format!("?code=a&state={STATE}"), None),
        ] {
            let mut req = http.get(&url);
            if let Some(h) = host {
                req = req.header("host", h);
            }
            let resp = req.send().await.unwrap();
            assert!(resp.status().is_client_error(), "{url}: {}", resp.status());
            let body = resp.text().await.unwrap();
            assert!(!body.contains("junk") && !body.contains(STATE), "a page echoed the request: {body}");
        }
        let real = tokio::spawn({
            let url = format!("{base}?code=real&state={STATE}");
            async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
        });
        let arrival = tokio::time::timeout(Duration::from_secs(10), lb.next()).await.unwrap().unwrap();
        assert_eq!(arrival.redirect, Redirect::Code { code: "real".into(), iss: None });
        arrival.answer(Page::new("Signed in", "done"));
        assert!(real.await.unwrap().contains("Signed in"));
        lb.close().await;
    }
}
