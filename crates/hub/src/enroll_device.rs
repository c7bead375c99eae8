//! Enrollment bound to a verified person: the device authorization grant (RFC 8628), the
//! hub its authorization server and the company's IdP behind the hub's own page.
//!
//! 1. The device asks (`POST /v1/enroll/device_authorization`, its name and OS account;
//!    with its credential when it is already enrolled by token and asks to be bound to
//!    its person) and gets a device code, a user code and the page's address.
//! 2. The person opens `GET /enroll?user_code=…` (the CLI opens it, or prints it), signs
//!    in with the IdP (the hub's `/v1/auth/callback`), sees the device's name, account and
//!    when it asked, and approves or denies (`POST /enroll/confirm`). That answer is bound
//!    to the person by a one-time confirmation the page carries, and must come from the
//!    hub's own origin.
//! 3. The device polls `POST /v1/enroll/token` (`authorization_pending`, `slow_down`,
//!    `access_denied`, `expired_token`) and, once approved, gets its credential and the
//!    person it answers for (or, binding, only the person).
//!
//! It never enrolls or binds a device no person confirmed on this page after signing in,
//! never shows a device code anywhere but to the device, never redirects the browser but
//! to the IdP or to a loopback address the device named, never renders text the device
//! sent without escaping it, and keeps codes and confirmations as digests only.

use crate::auth;
use crate::callers::{log_action_db, Staff};
use crate::oidc::Person;
use crate::reply::{error, internal};
use crate::staff_sessions::{to_the_idp, Purpose};
use crate::state::Hub;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::{Form, Json};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// The letters of a user code: consonants only (RFC 8628 §6.1), no vowels to spell words.
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code (20^8: about 2.6e10 codes).
const USER_CODE_LEN: usize = 8;
/// How long a person has to sign in and confirm.
pub const EXPIRES_SECS: i64 = 600;
/// How often the device may poll at first (each `slow_down` adds five seconds).
pub const INTERVAL_SECS: i64 = 5;
/// The most enrollments that may wait at once: anyone may ask, so past this the hub
/// answers "busy" rather than grow the table without bound.
const MAX_WAITING: i64 = 1000;
/// The most that may wait from one network address, so one client cannot take them all
/// (behind a reverse proxy every device shares the proxy's address: size this for it).
const MAX_WAITING_PER_SOURCE: i64 = 100;
/// The grant type of the token request.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Characters that reorder or hide text around them (bidirectional overrides and
/// isolates, zero-width and invisible format characters, line and paragraph separators):
/// a device name holding them could rearrange the page's own words about the code.
fn is_format(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// Text from the device or the IdP, as one line of at most `max` characters, without
/// control or format characters.
fn line(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control() && !is_format(*c)).take(max).collect::<String>().trim().to_string()
}

/// A user code as people type it (any case, with or without the dash or spaces), in the
/// form it is stored; none when it cannot be one.
pub fn normalise_user_code(typed: &str) -> Option<String> {
    let code: String = typed.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

fn new_user_code() -> String {
    let mut rng = rand::rng();
    (0..USER_CODE_LEN).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// `ABCD-EFGH`, as shown to people.
fn shown(code: &str) -> String {
    format!("{}-{}", &code[..4], &code[4..])
}

/// Where the browser may be sent back to once the person answered: the device's own
/// loopback listener (`http://127.0.0.1:PORT/…` or `http://localhost:PORT/…`), without user
/// info, query or fragment, so nothing can ride along in it.
pub fn loopback_return(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`return_to` is not a URL: {e}"))?;
    let host_ok = matches!(parsed.host_str(), Some("127.0.0.1") | Some("localhost"));
    if parsed.scheme() != "http" || !host_ok || parsed.port().is_none() {
        return Err(
            "`return_to` must be http://127.0.0.1:PORT/… or http://localhost:PORT/… (this device's own listener)"
                .into(),
        );
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.query().is_some() {
        return Err("`return_to` may carry no user info and no query".into());
    }
    if parsed.fragment().is_some() {
        return Err("`return_to` may carry no fragment".into());
    }
    Ok(parsed.to_string())
}

/// The hub's public base URL, without the trailing slash.
fn public(hub: &Hub) -> Option<&str> {
    hub.sign_in.as_ref().map(|s| s.public_url.as_str())
}

fn no_sign_in() -> Response {
    error(
        StatusCode::NOT_IMPLEMENTED,
        "this hub has no sign-in with the company's IdP ([oidc] in hub.toml): enroll with the token IT gives you \
         (countersign enroll HUB_URL TOKEN)",
    )
}

#[derive(Deserialize)]
pub(crate) struct Ask {
    name: String,
    os_user: Option<String>,
    return_to: Option<String>,
}

/// `POST /v1/enroll/device_authorization`: a device asks to be enrolled (or, with its
/// credential, bound) as the person who will confirm it.
pub(crate) async fn device_authorization(
    State(hub): State<Arc<Hub>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(ask): Json<Ask>,
) -> Response {
    let Some(base) = public(&hub) else { return no_sign_in() };
    let base = base.to_string();
    let source = peer.map(|Extension(ConnectInfo(addr))| addr.ip().to_string()).unwrap_or_default();
    let bind = match auth::bearer(&headers) {
        None => None,
        Some(_) => match crate::callers::device(&hub, &headers).await {
            Ok(d) => Some(d),
            Err(r) => return r,
        },
    };
    let name = line(&ask.name, 128);
    if name.is_empty() {
        return error(StatusCode::BAD_REQUEST, "`name` (this device's name, as people will see it) is empty");
    }
    let os_user = ask.os_user.as_deref().map(|u| line(u, 128)).filter(|u| !u.is_empty());
    let return_to = match ask.return_to.as_deref().map(loopback_return).transpose() {
        Ok(r) => r,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let now = now_unix();
    let db = &hub.db.pool;
    if let Err(e) = sqlx::query("DELETE FROM device_authorizations WHERE expires_unix < $1").bind(now).execute(db).await
    {
        return internal(e);
    }
    let counted: Result<(i64, i64), _> = sqlx::query_as(
        "SELECT count(*), COALESCE(SUM(CASE WHEN source = $1 THEN 1 ELSE 0 END), 0) FROM device_authorizations",
    )
    .bind(&source)
    .fetch_one(db)
    .await;
    match counted {
        Ok((all, from_here)) if all >= MAX_WAITING || from_here >= MAX_WAITING_PER_SOURCE => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many enrollments are waiting; try again in a few minutes",
            )
        }
        Ok(_) => {}
        Err(e) => return internal(e),
    }
    let device_code = auth::new_token("csdc_");
    // A clash of user codes (unique in the table) is answered by drawing again.
    for _ in 0..5 {
        let user_code = new_user_code();
        let inserted = sqlx::query(
            "INSERT INTO device_authorizations (device_code_sha256, user_code, name, os_user, bind_device, return_to, \
             created_unix, expires_unix, interval_secs, status, source) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10)",
        )
        .bind(auth::digest(&device_code))
        .bind(&user_code)
        .bind(&name)
        .bind(&os_user)
        .bind(&bind)
        .bind(&return_to)
        .bind(now)
        .bind(now + EXPIRES_SECS)
        .bind(INTERVAL_SECS)
        .bind(&source)
        .execute(db)
        .await;
        match inserted {
            Ok(_) => {
                tracing::info!(name, binds = bind.as_deref(), "a device asked to enroll by sign-in");
                return (
                    [(header::CACHE_CONTROL, "no-store")],
                    Json(json!({
                        "device_code": device_code,
                        "user_code": shown(&user_code),
                        "verification_uri": format!("{base}/enroll"),
                        "verification_uri_complete": format!("{base}/enroll?user_code={user_code}"),
                        "expires_in": EXPIRES_SECS,
                        "interval": INTERVAL_SECS,
                    })),
                )
                    .into_response();
            }
            Err(e) if e.to_string().to_lowercase().contains("unique") => continue,
            Err(e) => return internal(e),
        }
    }
    internal("five user codes in a row clashed")
}

/// A waiting enrollment, as the page shows it.
struct Waiting {
    name: String,
    os_user: Option<String>,
    bind_device: Option<String>,
    created_unix: i64,
}

async fn waiting(hub: &Hub, user_code: &str) -> Result<Option<Waiting>, sqlx::Error> {
    let row: Option<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
        "SELECT name, os_user, bind_device, created_unix FROM device_authorizations \
         WHERE user_code = $1 AND status = 'pending' AND expires_unix >= $2",
    )
    .bind(user_code)
    .bind(now_unix())
    .fetch_optional(&hub.db.pool)
    .await?;
    Ok(row.map(|(name, os_user, bind_device, created_unix)| Waiting { name, os_user, bind_device, created_unix }))
}

/// HTML text with `<`, `>`, `&` and quotes escaped: device names are the device's words.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page of the hub's own: no script, no style from elsewhere, never framed, never cached.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · Countersign</title></head>\
         <body><main><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        escape(title)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; form-action 'self' http://127.0.0.1:* http://localhost:*; frame-ancestors 'none'; \
                 base-uri 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct Open {
    user_code: Option<String>,
}

/// `GET /enroll`: asks for the code, or (given one that waits) sends the person to sign in.
pub(crate) async fn open(
    State(hub): State<Arc<Hub>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Query(q): Query<Open>,
) -> Response {
    if hub.sign_in.is_none() {
        return no_sign_in();
    }
    let source = peer.map(|Extension(ConnectInfo(addr))| addr.ip().to_string()).unwrap_or_default();
    let Some(typed) = q.user_code.filter(|c| !c.trim().is_empty()) else {
        return page(
            StatusCode::OK,
            "Enroll a device",
            "<form method=\"get\" action=\"/enroll\"><p><label>The code your device shows \
             <input name=\"user_code\" autocomplete=\"off\" autofocus></label></p><p><button>Continue</button></p></form>",
        );
    };
    if !hub.guesses.allowed(&source) {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong codes",
            "<p>Too many wrong codes came from your network in the last minute. Wait a minute, then type the code \
             your device shows.</p>",
        );
    }
    let Some(code) = normalise_user_code(&typed) else {
        hub.guesses.wrong(&source);
        return page(StatusCode::BAD_REQUEST, "Not a device code", "<p>A code is eight letters, like BCDF-GHJK.</p>");
    };
    match waiting(&hub, &code).await {
        Ok(Some(_)) => to_the_idp(&hub, Purpose::Enroll(code)).await,
        Ok(None) => {
            hub.guesses.wrong(&source);
            unknown_code()
        }
        Err(e) => internal(e),
    }
}

fn unknown_code() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Unknown or expired code",
        "<p>No device waits with this code: it was answered already, or ten minutes passed. Run <code>countersign \
         enroll</code> again on the device.</p>",
    )
}

/// After the person signed in for `user_code`: what the device is, and approve or deny.
pub(crate) async fn confirm_page(hub: &Hub, user_code: &str, person: &Person) -> Response {
    let device = match waiting(hub, user_code).await {
        Ok(Some(w)) => w,
        Ok(None) => return unknown_code(),
        Err(e) => return internal(e),
    };
    if let Some(bound) = &device.bind_device {
        match someone_else(hub, bound, &person.email).await {
            Ok(Some(why)) => {
                return page(
                    StatusCode::FORBIDDEN,
                    "This device is someone else's",
                    &format!("<p>{}</p>", escape(&why)),
                )
            }
            Ok(None) => {}
            Err(e) => return internal(e),
        }
    }
    let confirm = auth::new_token("csdk_");
    let set = sqlx::query(
        "UPDATE device_authorizations SET confirm_sha256 = $1, person_email = $2, person_subject = $3, \
         person_name = $4 WHERE user_code = $5 AND status = 'pending'",
    )
    .bind(auth::digest(&confirm))
    .bind(&person.email)
    .bind(&person.subject)
    .bind(&person.name)
    .bind(user_code)
    .execute(&hub.db.pool)
    .await;
    match set {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => return unknown_code(),
        Err(e) => return internal(e),
    }
    let ago = (now_unix() - device.created_unix).max(0);
    let what = if device.bind_device.is_some() {
        "already enrolled with this hub, asks to be bound to you"
    } else {
        "asks to be enrolled as yours"
    };
    let account = device
        .os_user
        .as_deref()
        .map(|u| format!(" (its account: <b><bdi>{}</bdi></b>)", escape(u)))
        .unwrap_or_default();
    let body = format!(
        "<p>You are signed in as <b>{email}</b>.</p>\
         <p>The device <b><bdi>{name}</bdi></b>{account} {what}. It asked {ago} seconds ago and shows the code <b>{code}</b>.</p>\
         <p>Approve only if this is your device and it shows this code now. Its calls will be recorded as yours.</p>\
         <form method=\"post\" action=\"/enroll/confirm\"><input type=\"hidden\" name=\"confirm\" value=\"{confirm}\">\
         <p><button name=\"decision\" value=\"deny\">Deny</button> \
         <button name=\"decision\" value=\"approve\">Approve</button></p></form>",
        email = escape(&person.email),
        name = escape(&device.name),
        code = shown(user_code),
    );
    page(StatusCode::OK, "Enroll this device?", &body)
}

/// Why the enrolled device `device` cannot be bound to `email`: it is bound to another
/// person, or IT assigned it to another (an admin revokes it first); none when it can.
async fn someone_else(hub: &Hub, device: &str, email: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT person_email, user_name FROM devices WHERE id = $1 AND revoked_at IS NULL")
            .bind(device)
            .fetch_optional(&hub.db.pool)
            .await?;
    Ok(match row {
        None => Some("this device was revoked".into()),
        Some((Some(p), _)) if p != email => {
            Some(format!("this device is bound to {p}; an admin revokes it before it can be anyone else's"))
        }
        Some((None, Some(u))) if u != email => {
            Some(format!("IT assigned this device to {u}; only they can bind it, or an admin revokes it"))
        }
        _ => None,
    })
}

#[derive(Deserialize)]
pub(crate) struct Confirm {
    confirm: String,
    decision: String,
}

/// `POST /enroll/confirm`: the person's answer, from the hub's own page.
pub(crate) async fn confirm(State(hub): State<Arc<Hub>>, headers: HeaderMap, Form(answer): Form<Confirm>) -> Response {
    let Some(sign_in) = &hub.sign_in else { return no_sign_in() };
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if origin != Some(sign_in.public_origin.as_str()) {
        return page(
            StatusCode::FORBIDDEN,
            "Refused",
            "<p>An answer to an enrollment must come from the hub's own page.</p>",
        );
    }
    let status = match answer.decision.as_str() {
        "approve" => "approved",
        "deny" => "denied",
        _ => return page(StatusCode::BAD_REQUEST, "Refused", "<p>The answer is approve or deny.</p>"),
    };
    let digest = auth::digest(&answer.confirm);
    type Row = (String, Option<String>, Option<String>, Option<String>, Option<String>);
    let row: Option<Row> = match sqlx::query_as(
        "SELECT name, os_user, bind_device, return_to, person_email FROM device_authorizations \
         WHERE confirm_sha256 = $1 AND status = 'pending' AND expires_unix >= $2",
    )
    .bind(&digest)
    .bind(now_unix())
    .fetch_optional(&hub.db.pool)
    .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let Some((name, os_user, bind_device, return_to, Some(email))) = row else { return unknown_code() };
    // Used once: only the answer that moves it from pending counts.
    let moved = sqlx::query(
        "UPDATE device_authorizations SET status = $1, confirm_sha256 = NULL WHERE confirm_sha256 = $2 AND status = 'pending'",
    )
    .bind(status)
    .bind(&digest)
    .execute(&hub.db.pool)
    .await;
    match moved {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => return unknown_code(),
        Err(e) => return internal(e),
    }
    let actor = Staff::new(format!("person {email}"), Vec::new());
    let binds = bind_device.map(|d| format!(", binding enrolled device {d}")).unwrap_or_default();
    let detail = format!("device `{name}` (account `{}`){binds}", os_user.as_deref().unwrap_or("unknown"));
    if let Err(e) = log_action_db(&hub.db, &actor, &format!("device-enrollment-{status}"), detail).await {
        return internal(e);
    }
    if let Some(to) = return_to {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, to), (header::CACHE_CONTROL, "no-store".into())])
            .into_response();
    }
    let said = if status == "approved" {
        "<p>Approved. The device finishes enrolling by itself; you can close this page.</p>"
    } else {
        "<p>Denied. The device was told so.</p>"
    };
    page(StatusCode::OK, if status == "approved" { "Device approved" } else { "Device denied" }, said)
}

#[derive(Deserialize)]
pub(crate) struct Poll {
    grant_type: String,
    device_code: String,
}

/// An error of the token endpoint, as OAuth words them (RFC 6749 §5.2, RFC 8628 §3.5).
fn oauth_error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

type Authorization =
    (String, Option<String>, Option<String>, i64, i64, Option<i64>, String, Option<String>, Option<String>);

/// `POST /v1/enroll/token`: the device polls; once the person approved, its credential.
pub(crate) async fn token(State(hub): State<Arc<Hub>>, Json(poll): Json<Poll>) -> Response {
    if poll.grant_type != GRANT_TYPE {
        return oauth_error("unsupported_grant_type", &format!("the grant type here is {GRANT_TYPE}"));
    }
    let digest = auth::digest(&poll.device_code);
    let db = &hub.db.pool;
    let row: Option<Authorization> = match sqlx::query_as(
        "SELECT name, os_user, bind_device, expires_unix, interval_secs, last_poll_unix, status, person_email, \
         person_subject FROM device_authorizations WHERE device_code_sha256 = $1",
    )
    .bind(&digest)
    .fetch_optional(db)
    .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let Some((name, os_user, bind_device, expires, interval, last_poll, status, email, subject)) = row else {
        return oauth_error("invalid_grant", "this device code is unknown or was used: run `countersign enroll` again");
    };
    let now = now_unix();
    let forget =
        || sqlx::query("DELETE FROM device_authorizations WHERE device_code_sha256 = $1").bind(&digest).execute(db);
    if now > expires {
        if let Err(e) = forget().await {
            return internal(e);
        }
        return oauth_error(
            "expired_token",
            "no one approved this device within ten minutes: run `countersign enroll` again",
        );
    }
    if status == "pending" {
        if last_poll.is_some_and(|at| now - at < interval) {
            let slower = interval + 5;
            if let Err(e) = sqlx::query(
                "UPDATE device_authorizations SET interval_secs = $1, last_poll_unix = $2 WHERE device_code_sha256 = $3",
            )
            .bind(slower)
            .bind(now)
            .bind(&digest)
            .execute(db)
            .await
            {
                return internal(e);
            }
            return oauth_error("slow_down", &format!("poll at most every {slower} seconds"));
        }
        if let Err(e) =
            sqlx::query("UPDATE device_authorizations SET last_poll_unix = $1 WHERE device_code_sha256 = $2")
                .bind(now)
                .bind(&digest)
                .execute(db)
                .await
        {
            return internal(e);
        }
        return oauth_error("authorization_pending", "waiting for the person to sign in and approve this device");
    }
    if status == "denied" {
        if let Err(e) = forget().await {
            return internal(e);
        }
        return oauth_error("access_denied", "the person who signed in denied this device");
    }
    let (Some(email), Some(subject)) = (email, subject) else {
        return internal("an approved enrollment without its person");
    };
    finish(&hub, &digest, Approved { name, os_user, bind_device, email, subject }).await
}

struct Approved {
    name: String,
    os_user: Option<String>,
    bind_device: Option<String>,
    email: String,
    subject: String,
}

/// The approved enrollment, taken once: a new device with its credential, or the enrolled
/// device it binds, now the person's.
async fn finish(hub: &Hub, digest: &str, a: Approved) -> Response {
    let mut tx = match hub.db.pool.begin().await {
        Ok(tx) => tx,
        Err(e) => return internal(e),
    };
    let taken = sqlx::query("DELETE FROM device_authorizations WHERE device_code_sha256 = $1 AND status = 'approved'")
        .bind(digest)
        .execute(&mut *tx)
        .await;
    match taken {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => return oauth_error("invalid_grant", "this device code was used already"),
        Err(e) => return internal(e),
    }
    let now = countersign_audit::now_rfc3339();
    let (device, credential, action) =
        match &a.bind_device {
            Some(device) => {
                let bound = sqlx::query(
                    "UPDATE devices SET person_email = $1, person_subject = $2, verified_at = $3 \
                 WHERE id = $4 AND revoked_at IS NULL AND (person_email IS NULL OR person_email = $1) \
                 AND (user_name IS NULL OR user_name = $1)",
                )
                .bind(&a.email)
                .bind(&a.subject)
                .bind(&now)
                .bind(device)
                .execute(&mut *tx)
                .await;
                match bound {
                    Ok(r) if r.rows_affected() == 1 => {}
                    Ok(_) => return oauth_error(
                        "invalid_grant",
                        "the device was revoked, or is bound or assigned to someone else: an admin revokes it first",
                    ),
                    Err(e) => return internal(e),
                }
                (device.clone(), None, "device-bound")
            }
            None => {
                let device = uuid::Uuid::now_v7().to_string();
                let credential = auth::new_token("csd_");
                let inserted = sqlx::query(
                    "INSERT INTO devices (id, name, credential_sha256, enrolled_at, person_email, person_subject, \
                 verified_at) VALUES ($1, $2, $3, $4, $5, $6, $4)",
                )
                .bind(&device)
                .bind(&a.name)
                .bind(auth::digest(&credential))
                .bind(&now)
                .bind(&a.email)
                .bind(&a.subject)
                .execute(&mut *tx)
                .await;
                if let Err(e) = inserted {
                    return internal(e);
                }
                (device, Some(credential), "device-enrolled")
            }
        };
    let detail = format!("device {device} `{}` (account `{}`)", a.name, a.os_user.as_deref().unwrap_or("unknown"));
    let logged = sqlx::query("INSERT INTO admin_log (id, time, action, detail, actor) VALUES ($1, $2, $3, $4, $5)")
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&now)
        .bind(action)
        .bind(detail)
        .bind(format!("person {}", a.email))
        .execute(&mut *tx)
        .await;
    if let Err(e) = logged {
        return internal(e);
    }
    if let Err(e) = tx.commit().await {
        return internal(e);
    }
    tracing::info!(device, email = %a.email, action, "device enrolled by sign-in");
    let mut body = json!({ "device_id": device, "user": a.email, "user_verified": true });
    if let Some(c) = credential {
        body["credential"] = json!(c);
    }
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_read_as_people_type_them() {
        let code = new_user_code();
        assert_eq!(normalise_user_code(&shown(&code).to_lowercase()), Some(code.clone()));
        assert_eq!(normalise_user_code(&format!(" {} ", shown(&code))), Some(code));
        for bad in ["", "BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH", "BCDF-GHJ1", "<scr-ipt>"] {
            assert_eq!(normalise_user_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_browser_goes_back_only_to_this_devices_loopback() {
        assert!(loopback_return("http://127.0.0.1:43123/enrolled").is_ok());
        assert!(loopback_return("http://localhost:43123/").is_ok());
        for bad in [
            "https://evil.example/",
            "http://127.0.0.1/no-port",
            "http://127.0.0.1.evil.example:80/",
            "http://user@127.0.0.1:1/",
            "http://127.0.0.1:1/?code=x",
            "http://127.0.0.1:1/#x",
            "javascript:alert(1)",
        ] {
            assert!(loopback_return(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn device_words_are_shown_inertly() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
