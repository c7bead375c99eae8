//! Every route against every kind of caller: each role's API token, the break-glass
//! token, a revoked and an expired token, a device credential, none. The table below is
//! written out by hand, apart from the code's own table ([`crate::roles`]), and must name
//! every route the router serves: a route added without a decision fails here.

use super::*;
use crate::api_tokens;
use crate::roles::Role;
use std::collections::BTreeMap;
use tower::ServiceExt;

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
enum Who {
    Anyone,
    Device,
    Staff(&'static [Role]),
    /// A person signed in with the IdP, whatever their role: every API token is refused
    /// as nobody (403 saying so), and the usual failures are 401.
    Person,
}

const FLEET: &[Role] = &[Role::Viewer, Role::Auditor, Role::Approver, Role::PolicyAdmin, Role::Admin];
const AUDIT: &[Role] = &[Role::Auditor, Role::Admin];
const PUBLISH: &[Role] = &[Role::PolicyAdmin, Role::Admin];
const ADMIN: &[Role] = &[Role::Admin];
const SCIM: &[Role] = &[Role::Admin, Role::Scim];

fn expected() -> BTreeMap<(&'static str, &'static str), Who> {
    BTreeMap::from([
        (("GET", "/healthz"), Who::Anyone),
        (("GET", "/v1/openapi.json"), Who::Anyone),
        (("POST", "/v1/enroll"), Who::Anyone),
        (("POST", "/v1/enroll/device_authorization"), Who::Anyone),
        (("POST", "/v1/enroll/token"), Who::Anyone),
        (("GET", "/enroll"), Who::Anyone),
        (("POST", "/enroll/confirm"), Who::Anyone),
        (("GET", "/v1/device"), Who::Device),
        (("POST", "/v1/ingest"), Who::Device),
        (("GET", "/v1/checkpoint"), Who::Device),
        (("GET", "/v1/policy/bundle"), Who::Device),
        (("GET", "/v1/devices"), Who::Staff(FLEET)),
        (("GET", "/v1/alerts"), Who::Staff(FLEET)),
        (("POST", "/v1/alerts/{id}/acknowledge"), Who::Staff(AUDIT)),
        (("GET", "/v1/audit"), Who::Staff(AUDIT)),
        (("GET", "/v1/entitlements"), Who::Staff(AUDIT)),
        (("GET", "/v1/admin-log"), Who::Staff(AUDIT)),
        (("PUT", "/v1/policy"), Who::Staff(PUBLISH)),
        (("GET", "/v1/policy"), Who::Staff(FLEET)),
        (("GET", "/v1/policy/history"), Who::Staff(FLEET)),
        (("GET", "/v1/policy/versions/{id}"), Who::Staff(FLEET)),
        (("POST", "/v1/policy/check"), Who::Staff(PUBLISH)),
        (("POST", "/v1/policy/preview"), Who::Staff(PUBLISH)),
        (("POST", "/v1/enrollment-tokens"), Who::Staff(ADMIN)),
        (("GET", "/v1/api-tokens"), Who::Staff(ADMIN)),
        (("POST", "/v1/api-tokens"), Who::Staff(ADMIN)),
        (("POST", "/v1/api-tokens/{id}/revoke"), Who::Staff(ADMIN)),
        (("GET", "/v1/auth/login"), Who::Anyone),
        (("GET", "/v1/auth/callback"), Who::Anyone),
        (("POST", "/v1/auth/logout"), Who::Staff(&Role::ALL)),
        (("GET", "/v1/auth/whoami"), Who::Staff(&Role::ALL)),
        (("POST", "/v1/devices/{id}/revoke"), Who::Staff(ADMIN)),
        (("GET", "/v1/agents"), Who::Staff(FLEET)),
        (("POST", "/v1/agents"), Who::Staff(ADMIN)),
        (("POST", "/v1/agents/{name}/{action}"), Who::Staff(ADMIN)),
        (("POST", "/v1/approvals"), Who::Device),
        (("GET", "/v1/approvals/waiting"), Who::Device),
        (("GET", "/v1/approvals/{id}"), Who::Device),
        (("POST", "/v1/approvals/{id}/answer"), Who::Device),
        (("GET", "/v1/my-approvals"), Who::Person),
        (("POST", "/v1/my-approvals/{id}"), Who::Person),
        (("POST", "/v1/approvals/{id}/withdraw"), Who::Device),
        (("GET", "/scim/v2/Users"), Who::Staff(SCIM)),
        (("POST", "/scim/v2/Users"), Who::Staff(SCIM)),
        (("GET", "/scim/v2/Users/{id}"), Who::Staff(SCIM)),
        (("PUT", "/scim/v2/Users/{id}"), Who::Staff(SCIM)),
        (("PATCH", "/scim/v2/Users/{id}"), Who::Staff(SCIM)),
        (("DELETE", "/scim/v2/Users/{id}"), Who::Staff(SCIM)),
        (("GET", "/scim/v2/Groups"), Who::Staff(SCIM)),
        (("POST", "/scim/v2/Groups"), Who::Staff(SCIM)),
        (("PATCH", "/scim/v2/Groups/{id}"), Who::Staff(SCIM)),
        (("DELETE", "/scim/v2/Groups/{id}"), Who::Staff(SCIM)),
    ])
}

async fn send(hub: &Arc<Hub>, method: &str, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(path.replace("{id}", "0193f1d2-no-such-token"))
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = router(hub.clone()).oneshot(req.body(axum::body::Body::from("{}")).unwrap()).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn count(hub: &Hub, sql: &str) -> i64 {
    sqlx::query_as::<_, (i64,)>(sql).fetch_one(&hub.db.pool).await.unwrap().0
}

#[tokio::test]
async fn every_route_admits_exactly_the_roles_it_should() {
    let db = crate::db::Db::connect("sqlite::memory:").await.unwrap();
    let hub = Arc::new(Hub {
        db,
        admin_token_sha256: Some(auth::digest("csa_glass")),
        signing_key: None,
        bundle_valid_for: std::time::Duration::from_secs(60),
        published: Default::default(),
        siem: crate::siem::Siem::disabled(),
        max_ingest_bytes: gate::DEFAULT_INGEST_CAP,
        sign_in: None,
        guesses: Default::default(),
        approvals_changed: Default::default(),
    });
    let table = expected();
    let mut served = ROUTES.to_vec();
    served.sort();
    let decided: Vec<_> = table.keys().copied().collect();
    assert_eq!(served, decided, "the table names exactly the routes the router serves");

    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, api_tokens::create(&hub.db, role, role.as_str(), None, "test").await.unwrap().1));
    }
    let (revoked, revoked_plain) = api_tokens::create(&hub.db, Role::Admin, "revoked", None, "test").await.unwrap();
    api_tokens::revoke(&hub.db, &revoked.id).await.unwrap();
    let (_, expired_plain) =
        api_tokens::create(&hub.db, Role::Admin, "expired", Some(std::time::Duration::from_secs(60)), "test")
            .await
            .unwrap();
    sqlx::query("UPDATE api_tokens SET expires_unix = 1 WHERE name = 'expired'").execute(&hub.db.pool).await.unwrap();
    let device = auth::create_enrollment_token(&hub.db, 1, None).await.unwrap();
    let enrolled = send(&hub, "POST", "/v1/enroll", None).await;
    assert_eq!(enrolled.0, StatusCode::UNPROCESSABLE_ENTITY, "{}: an empty body enrolls nothing", enrolled.1);
    let device_credential = {
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/enroll")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(json!({"token": device, "name": "laptop"}).to_string()))
            .unwrap();
        let resp = router(hub.clone()).oneshot(req).await.unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap()).unwrap();
        body["credential"].as_str().unwrap().to_string()
    };

    for ((method, path), who) in &table {
        let what = format!("{method} {path}");
        match who {
            Who::Anyone => continue,
            Who::Device => {
                for (role, token) in &tokens {
                    let (status, body) = send(&hub, method, path, Some(token)).await;
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} with a {role} API token: {body}");
                }
                let (status, body) = send(&hub, method, path, Some(&device_credential)).await;
                // Past the credential, approvals ask for a device bound to a verified
                // person; this one was enrolled by token.
                let unverified = status == StatusCode::FORBIDDEN && body.contains("verified");
                assert!(
                    unverified || !matches!(status.as_u16(), 401 | 403),
                    "{what} with a device credential: {status} {body}"
                );
            }
            Who::Person => {
                for (role, token) in &tokens {
                    let (status, body) = send(&hub, method, path, Some(token)).await;
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what} as a {role} API token: {body}");
                    assert!(body.contains("signed in with the company's IdP"), "{what} as {role}: {body}");
                }
                for token in [None, Some(device_credential.as_str()), Some(revoked_plain.as_str())] {
                    let (status, body) = send(&hub, method, path, token).await;
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} with {token:?}: {body}");
                }
            }
            Who::Staff(roles) => {
                for (role, token) in &tokens {
                    let logged = count(&hub, "SELECT COUNT(*) FROM admin_log").await;
                    let (status, body) = send(&hub, method, path, Some(token)).await;
                    if roles.contains(role) {
                        assert!(!matches!(status.as_u16(), 401 | 403), "{what} as {role}: {status} {body}");
                    } else {
                        assert_eq!(status, StatusCode::FORBIDDEN, "{what} as {role}: {body}");
                        assert!(body.contains(&format!("role `{role}` may not")), "{what} as {role}: {body}");
                        assert_eq!(count(&hub, "SELECT COUNT(*) FROM admin_log").await, logged, "{what} as {role}");
                    }
                }
                for (label, token) in [
                    ("no token", None),
                    ("a device credential", Some(device_credential.as_str())),
                    ("a revoked token", Some(revoked_plain.as_str())),
                    ("an expired token", Some(expired_plain.as_str())),
                    ("an unknown token", Some("csk_0000")),
                ] {
                    let (status, body) = send(&hub, method, path, token).await;
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} with {label}: {body}");
                    assert!(!body.contains("csk_") && !body.contains("csd_"), "{what}: a refusal echoes no credential");
                }
                let alerts = count(&hub, "SELECT COUNT(*) FROM alerts WHERE kind = 'break-glass'").await;
                let (status, body) = send(&hub, method, path, Some("csa_glass")).await;
                assert!(!matches!(status.as_u16(), 401 | 403), "{what} with the break-glass token: {status} {body}");
                assert_eq!(
                    count(&hub, "SELECT COUNT(*) FROM alerts WHERE kind = 'break-glass'").await,
                    alerts + 1,
                    "{what}: every break-glass use is one alert"
                );
            }
        }
    }
    let (_, body) = send(&hub, "GET", "/v1/admin-log", Some(&tokens[4].1)).await;
    let log: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(log.iter().any(|e| e["actor"] == "break-glass" && e["action"] == "policy-publish"), "{body}");
    assert!(log.iter().any(|e| e["actor"].as_str().is_some_and(|a| a.starts_with("api-token auditor ("))), "{body}");
}

#[tokio::test]
async fn an_admin_makes_lists_and_revokes_api_tokens_over_http() {
    let db = crate::db::Db::connect("sqlite::memory:").await.unwrap();
    let hub = Arc::new(Hub {
        db,
        admin_token_sha256: None,
        signing_key: None,
        bundle_valid_for: std::time::Duration::from_secs(60),
        published: Default::default(),
        siem: crate::siem::Siem::disabled(),
        max_ingest_bytes: gate::DEFAULT_INGEST_CAP,
        sign_in: None,
        guesses: Default::default(),
        approvals_changed: Default::default(),
    });
    let (_, admin) = api_tokens::create(&hub.db, Role::Admin, "bootstrap", None, "test").await.unwrap();
    let post = |body: serde_json::Value| {
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/api-tokens")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {admin}"))
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let hub = hub.clone();
        async move {
            let resp = router(hub).oneshot(req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
            (status, serde_json::from_slice::<serde_json::Value>(&body).unwrap())
        }
    };
    let (status, made) = post(json!({"role": "auditor", "name": "siem", "expires": "30d"})).await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let auditor = made["token"].as_str().unwrap().to_string();
    assert_eq!(made["api_token"]["role"], "auditor");
    assert_eq!(send(&hub, "GET", "/v1/audit", Some(&auditor)).await.0, StatusCode::OK);

    for (bad, says) in [
        (json!({"role": "root", "name": "x"}), "`root` is not a role"),
        (json!({"role": "viewer", "name": "x", "expires": "400d"}), "366 days"),
        (json!({"role": "viewer", "name": "x", "expires": "soon"}), "not a lifetime"),
        (json!({"role": "viewer"}), "missing field `name`"),
    ] {
        let (status, body) = post(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().contains(says), "{bad}: {body}");
    }

    let (status, listed) = send(&hub, "GET", "/v1/api-tokens", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!listed.contains(&auditor) && !listed.contains("sha256"), "a listing holds no secret: {listed}");
    let id = made["api_token"]["id"].as_str().unwrap();
    let (status, body) = send(&hub, "POST", &format!("/v1/api-tokens/{id}/revoke"), Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(&hub, "GET", "/v1/audit", Some(&auditor)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("`siem` was revoked"), "{body}");
    let (status, _) = send(&hub, "POST", "/v1/api-tokens/no-such-id/revoke", Some(&admin)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let log: Vec<(String, String)> =
        sqlx::query_as("SELECT action, detail FROM admin_log ORDER BY time, id").fetch_all(&hub.db.pool).await.unwrap();
    assert!(log.iter().any(|(a, d)| a == "api-token-create" && d.contains("role auditor")), "{log:?}");
    assert!(log.iter().all(|(_, d)| !d.contains(&auditor)), "the admin log holds no token");
}
