//! A sign-in whose ID token must be refused, through the hub's own routes: the IdP's
//! answer comes back wrong (another audience, another issuer, a replayed nonce, expired,
//! signed with a key it does not publish, `alg: none`), and each is refused with a clear
//! message, an alert and an admin log line, and no session. The real provider in the
//! e2e tests (`oidc-provider`) only ever sends good tokens, so the provider here is a
//! small in-process stand-in serving discovery, its keys and a token endpoint that
//! answers with the token the test made.

use super::*;
use crate::config::HubConfig;
use crate::oidc::tests::{key, Token, CLIENT};
use crate::oidc::SignIn;
use openidconnect::core::CoreJsonWebKeySet;
use openidconnect::PrivateSigningKey;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tower::ServiceExt;

/// The stand-in provider: its issuer URL and the next ID token its token endpoint gives.
async fn provider(next: Arc<Mutex<String>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let meta = json!({
        "issuer": issuer, "authorization_endpoint": format!("{issuer}/auth"), "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"), "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"]
    });
    let jwks = serde_json::to_value(CoreJsonWebKeySet::new(vec![key("oidc-test-key.pem", "k1").as_verification_key()]))
        .unwrap();
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", axum::routing::get(move || async move { Json(meta) }))
        .route("/jwks", axum::routing::get(move || async move { Json(jwks) }))
        .route(
            "/token",
            axum::routing::post(move || async move {
                let id_token = next.lock().unwrap().clone();
                Json(json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    issuer
}

async fn hub(issuer: &str) -> Arc<Hub> {
    let config: HubConfig = toml::from_str(&format!(
        "public_url = \"http://127.0.0.1:9\"\n[oidc]\nissuer = \"{issuer}\"\nclient_id = \"{CLIENT}\"\n\
         [roles]\n\"it-auditors\" = \"auditor\"\n"
    ))
    .unwrap();
    let sign_in = SignIn::new(&config, config.oidc.as_ref().unwrap(), None).unwrap();
    Arc::new(Hub {
        db: crate::db::Db::connect("sqlite::memory:").await.unwrap(),
        admin_token_sha256: None,
        signing_key: None,
        bundle_valid_for: std::time::Duration::from_secs(60),
        published: Default::default(),
        siem: crate::siem::Siem::disabled(),
        max_ingest_bytes: crate::gate::DEFAULT_INGEST_CAP,
        sign_in: Some(sign_in),
        guesses: Default::default(),
        approvals_changed: Default::default(),
    })
}

async fn get(hub: &Arc<Hub>, uri: &str) -> (StatusCode, HeaderMap, String) {
    get_as(hub, uri, None).await
}

/// A request from the browser holding `cookie` (the sign-in's binding, as the login set it).
async fn get_as(hub: &Arc<Hub>, uri: &str, cookie: Option<&str>) -> (StatusCode, HeaderMap, String) {
    let mut req = axum::http::Request::builder().uri(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let req = req.body(axum::body::Body::empty()).unwrap();
    let resp = crate::routes::router(hub.clone()).oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (parts.status, parts.headers, String::from_utf8_lossy(&body).into_owned())
}

/// Starts a sign-in; returns the `state` and `nonce` the hub sent to the provider, and
/// the cookie that binds the sign-in to this browser.
async fn start(hub: &Arc<Hub>) -> (String, String, String) {
    let (status, headers, body) = get(hub, "/v1/auth/login").await;
    let bound = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    assert!(bound.starts_with("countersign_sign_in="), "{bound}");
    assert_eq!(status, StatusCode::FOUND, "{body}");
    let to = reqwest::Url::parse(headers[header::LOCATION].to_str().unwrap()).unwrap();
    let q: BTreeMap<String, String> = to.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], CLIENT);
    (q["state"].clone(), q["nonce"].clone(), bound)
}

async fn count(hub: &Hub, sql: &str) -> i64 {
    sqlx::query_as::<_, (i64,)>(sql).fetch_one(&hub.db.pool).await.unwrap().0
}

#[tokio::test]
async fn a_token_that_does_not_verify_opens_no_session_and_is_an_alert() {
    let next = Arc::new(Mutex::new(String::new()));
    let issuer = provider(next.clone()).await;
    let hub = hub(&issuer).await;

    // A good one first, so the stand-in is known to work.
    let (state, nonce, bound) = start(&hub).await;
    *next.lock().unwrap() = Token { issuer: issuer.clone(), nonce, ..Token::default() }.sign();
    let (status, headers, body) = get_as(&hub, &format!("/v1/auth/callback?code=c&state={state}"), Some(&bound)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers[header::SET_COOKIE].to_str().unwrap().starts_with("countersign_hub_session=css_"));

    type Bad = fn(String, String) -> Token;
    let cases: [(&str, Bad, &str); 6] = [
        (
            "another audience",
            |i, n| Token { issuer: i, nonce: n, audience: "someone-else", ..Token::default() },
            "audience",
        ),
        ("another issuer", |_, n| Token { nonce: n, ..Token::default() }, "issuer"),
        ("a replayed nonce", |i, _| Token { issuer: i, nonce: "n-old".into(), ..Token::default() }, "nonce"),
        ("expired", |i, n| Token { issuer: i, nonce: n, expires_in: -120, ..Token::default() }, "expired"),
        (
            "an unknown key",
            |i, n| Token { issuer: i, nonce: n, key: ("oidc-other-key.pem", "k2"), ..Token::default() },
            "key",
        ),
        (
            "unverified email",
            |i, n| Token { issuer: i, nonce: n, email_verified: Some(false), ..Token::default() },
            "not verified",
        ),
    ];
    for (what, make, says) in cases {
        let sessions = count(&hub, "SELECT COUNT(*) FROM staff_sessions").await;
        let alerts = count(&hub, "SELECT COUNT(*) FROM alerts WHERE kind = 'sign-in-refused'").await;
        let (state, nonce, bound) = start(&hub).await;
        let token = make(issuer.clone(), nonce).sign();
        *next.lock().unwrap() = token.clone();
        let (status, headers, body) =
            get_as(&hub, &format!("/v1/auth/callback?code=c&state={state}"), Some(&bound)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert!(body.contains("sign-in refused") && body.to_lowercase().contains(says), "{what}: {body}");
        assert!(!headers.contains_key(header::SET_COOKIE), "{what}: no cookie");
        assert_eq!(count(&hub, "SELECT COUNT(*) FROM staff_sessions").await, sessions, "{what}: no session");
        assert_eq!(
            count(&hub, "SELECT COUNT(*) FROM alerts WHERE kind = 'sign-in-refused'").await,
            alerts + 1,
            "{what}: one alert"
        );
        let stored: Vec<(String,)> = sqlx::query_as("SELECT detail FROM alerts UNION ALL SELECT detail FROM admin_log")
            .fetch_all(&hub.db.pool)
            .await
            .unwrap();
        assert!(stored.iter().all(|(d,)| !d.contains(&token)), "{what}: no token stored");
    }

    // alg: none, hand made.
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let (state, nonce, bound) = start(&hub).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    *next.lock().unwrap() = format!(
        "{}.{}.",
        b64(json!({"alg": "none"})),
        b64(json!({"iss": issuer, "aud": CLIENT, "sub": "eve", "email": "eve@example.com", "groups": ["it-auditors"],
                   "exp": now + 300, "iat": now, "nonce": nonce}))
    );
    let (status, _, body) = get_as(&hub, &format!("/v1/auth/callback?code=c&state={state}"), Some(&bound)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "alg none: {body}");
    let log: Vec<(String, String)> =
        sqlx::query_as("SELECT action, actor FROM admin_log WHERE action = 'sign-in-refused'")
            .fetch_all(&hub.db.pool)
            .await
            .unwrap();
    assert_eq!(log.len(), 7, "every refusal is in the admin log: {log:?}");
}
