//! SCIM 2.0 (RFC 7643/7644) as Okta and Entra ID send it: `/scim/v2/Users` and
//! `/scim/v2/Groups` (list with `filter=userName eq "…"` / `displayName eq "…"`, create,
//! read, replace, patch, delete), behind a bearer API token of the `scim` role. A person
//! set `active: false` (PUT, or PATCH in Okta's or Entra's shape, `"False"` included) or
//! deleted is deprovisioned at once ([`crate::people::deprovision`]): devices revoked,
//! sign-ins ended, agents suspended, all in the admin log.
//!
//! It never takes a cookie (the IdP calls with a bearer token), never deletes an audit
//! trace of a person, and answers every error in SCIM's error shape.

use crate::callers::{log_action, staff, Staff};
use crate::people;
use crate::reply::internal;
use crate::roles::Permission;
use crate::state::Hub;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn scim(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/scim+json")], body.to_string()).into_response()
}

fn scim_error(status: StatusCode, detail: impl Into<String>) -> Response {
    scim(status, json!({ "schemas": [ERROR], "status": status.as_u16().to_string(), "detail": detail.into() }))
}

/// Routes with a body are behind their gate, which authenticated the caller; the IdP
/// calls with a bearer token, never a cookie.
fn bearer_only(headers: &HeaderMap) -> Option<Response> {
    match crate::auth::bearer(headers) {
        Some(_) => None,
        None => Some(scim_error(StatusCode::UNAUTHORIZED, "a bearer API token with the `scim` role is required")),
    }
}

/// The IdP, by its bearer API token (`scim` or `admin` role); a cookie is not enough.
async fn provisioner(hub: &Hub, headers: &HeaderMap, what: &str) -> Result<Staff, Response> {
    if crate::auth::bearer(headers).is_none() {
        return Err(scim_error(StatusCode::UNAUTHORIZED, "a bearer API token with the `scim` role is required"));
    }
    staff(hub, headers, Permission::Provision, what).await
}

/// A person's SCIM resource.
#[derive(Debug, Clone)]
struct Person {
    id: String,
    external_id: Option<String>,
    user_name: String,
    email: String,
    display_name: Option<String>,
    active: bool,
    created_at: String,
    updated_at: String,
    /// The manager as the IdP names them (`manager.value` of the enterprise extension).
    manager: Option<String>,
}

/// SCIM's enterprise User extension, where IdPs send a person's manager.
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// `manager.value` (or a bare string) from an enterprise extension object.
fn manager_of(extension: &Value) -> Option<String> {
    let m = extension.get("manager")?;
    let value = m.get("value").unwrap_or(m).as_str()?;
    let clean: String = value.chars().filter(|c| !c.is_control()).take(256).collect();
    (!clean.trim().is_empty()).then_some(clean)
}

impl Person {
    fn resource(&self, base: &str) -> Value {
        json!({
            "schemas": [USER], "id": self.id, "externalId": self.external_id, "userName": self.user_name,
            "displayName": self.display_name, "active": self.active,
            "emails": [{ "value": self.email, "primary": true, "type": "work" }],
            ENTERPRISE: { "manager": self.manager.as_ref().map(|m| json!({ "value": m })) },
            "meta": { "resourceType": "User", "created": self.created_at, "lastModified": self.updated_at,
                      "location": format!("{base}/scim/v2/Users/{}", self.id) }
        })
    }
}

type PersonRow = (String, Option<String>, String, String, Option<String>, i64, String, String, Option<String>);
const PERSON_COLUMNS: &str = "id, external_id, user_name, email, display_name, active, created_at, updated_at, manager";

fn person_of(r: PersonRow) -> Person {
    Person {
        id: r.0,
        external_id: r.1,
        user_name: r.2,
        email: r.3,
        display_name: r.4,
        active: r.5 != 0,
        created_at: r.6,
        updated_at: r.7,
        manager: r.8,
    }
}

fn base(hub: &Hub) -> String {
    hub.sign_in.as_ref().map(|s| s.public_url.clone()).unwrap_or_default()
}

/// `active` as the IdPs send it: a boolean, or Entra's `"True"`/`"False"`.
fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A person's fields from a SCIM User body (create or replace).
struct UserFields {
    user_name: String,
    email: String,
    external_id: Option<String>,
    display_name: Option<String>,
    active: bool,
    manager: Option<String>,
}

fn user_fields(body: &Value) -> Result<UserFields, String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string).filter(|s| !s.trim().is_empty());
    let user_name = text(body.get("userName")).ok_or("a User needs `userName`")?;
    let emails = body.get("emails").and_then(Value::as_array).cloned().unwrap_or_default();
    let primary = emails
        .iter()
        .find(|e| e.get("primary").and_then(truthy) == Some(true))
        .or_else(|| emails.first())
        .and_then(|e| text(e.get("value")));
    let email = primary.unwrap_or_else(|| user_name.clone());
    let email = crate::agents::check_email("the email", &email).map_err(|e| e.to_string())?;
    let display_name = text(body.get("displayName")).or_else(|| {
        let name = body.get("name")?;
        let given = text(name.get("givenName")).unwrap_or_default();
        let family = text(name.get("familyName")).unwrap_or_default();
        Some(format!("{given} {family}").trim().to_string()).filter(|n| !n.is_empty())
    });
    let active = body.get("active").map_or(Some(true), truthy).ok_or("`active` must be true or false")?;
    let clip = |s: String| s.chars().filter(|c| !c.is_control()).take(256).collect::<String>();
    Ok(UserFields {
        user_name: clip(user_name),
        email,
        external_id: text(body.get("externalId")).map(clip),
        display_name: display_name.map(clip),
        active,
        manager: body.get(ENTERPRISE).and_then(manager_of),
    })
}

async fn find_person(hub: &Hub, id: &str) -> Result<Option<Person>, sqlx::Error> {
    let row: Option<PersonRow> =
        sqlx::query_as(&format!("SELECT {PERSON_COLUMNS} FROM people WHERE id = $1 AND deleted_at IS NULL"))
            .bind(id)
            .fetch_optional(&hub.db.pool)
            .await?;
    Ok(row.map(person_of))
}

/// `eq` filters only (what the IdPs send before creating): `attr eq "value"`.
fn eq_filter(filter: &str) -> Option<(String, String)> {
    let (attr, rest) = filter.trim().split_once(' ')?;
    let (op, value) = rest.trim().split_once(' ')?;
    if !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
    Some((attr.to_string(), value.replace("\\\"", "\"")))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<i64>,
    count: Option<i64>,
}

/// `GET /scim/v2/Users`.
pub(crate) async fn list_users(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(r) = provisioner(&hub, &headers, "GET /scim/v2/Users").await {
        return r;
    }
    let (column, value) = match q.filter.as_deref().map(eq_filter) {
        None => (None, String::new()),
        Some(Some((attr, value))) => match attr.to_ascii_lowercase().as_str() {
            "username" => (Some("user_name"), value),
            "externalid" => (Some("external_id"), value),
            "emails.value" | "emails" => (Some("email"), value.to_lowercase()),
            _ => return scim_error(StatusCode::BAD_REQUEST, format!("filtering by `{attr}` is not supported")),
        },
        Some(None) => {
            return scim_error(StatusCode::BAD_REQUEST, "only `ATTRIBUTE eq \"VALUE\"` filters are supported")
        }
    };
    let start = q.start_index.unwrap_or(1).max(1);
    let count = q.count.unwrap_or(100).clamp(0, 1000);
    let sql = match column {
        Some(c) => {
            format!("SELECT {PERSON_COLUMNS} FROM people WHERE deleted_at IS NULL AND {c} = $1 ORDER BY created_at")
        }
        None => format!("SELECT {PERSON_COLUMNS} FROM people WHERE deleted_at IS NULL AND $1 = $1 ORDER BY created_at"),
    };
    let rows: Vec<PersonRow> = match sqlx::query_as(&sql).bind(&value).fetch_all(&hub.db.pool).await {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let total = rows.len();
    let base = base(&hub);
    let page: Vec<Value> =
        rows.into_iter().skip(start as usize - 1).take(count as usize).map(|r| person_of(r).resource(&base)).collect();
    scim(
        StatusCode::OK,
        json!({ "schemas": [LIST], "totalResults": total, "startIndex": start, "itemsPerPage": page.len(), "Resources": page }),
    )
}

/// `GET /scim/v2/Users/{id}`.
pub(crate) async fn get_user(State(hub): State<Arc<Hub>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = provisioner(&hub, &headers, "GET /scim/v2/Users/{id}").await {
        return r;
    }
    match find_person(&hub, &id).await {
        Ok(Some(p)) => scim(StatusCode::OK, p.resource(&base(&hub))),
        Ok(None) => scim_error(StatusCode::NOT_FOUND, "no such User"),
        Err(e) => internal(e),
    }
}

fn body_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))
}

/// `POST /scim/v2/Users`.
pub(crate) async fn create_user(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Extension(staff): Extension<Staff>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = bearer_only(&headers) {
        return r;
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(why) => return scim_error(StatusCode::BAD_REQUEST, why),
    };
    let fields = match user_fields(&body) {
        Ok(f) => f,
        Err(why) => return scim_error(StatusCode::BAD_REQUEST, why),
    };
    let taken: Result<Option<(String,)>, _> =
        sqlx::query_as("SELECT id FROM people WHERE (user_name = $1 OR email = $2) AND deleted_at IS NULL")
            .bind(&fields.user_name)
            .bind(&fields.email)
            .fetch_optional(&hub.db.pool)
            .await;
    match taken {
        Ok(Some(_)) => {
            return scim(
                StatusCode::CONFLICT,
                json!({ "schemas": [ERROR], "status": "409", "scimType": "uniqueness", "detail": "a User with this userName or email exists" }),
            )
        }
        Ok(None) => {}
        Err(e) => return internal(e),
    }
    let now = countersign_audit::now_rfc3339();
    let person = Person {
        id: uuid::Uuid::now_v7().to_string(),
        external_id: fields.external_id,
        user_name: fields.user_name,
        email: fields.email,
        display_name: fields.display_name,
        active: fields.active,
        created_at: now.clone(),
        updated_at: now,
        manager: fields.manager,
    };
    let inserted =
        sqlx::query(&format!("INSERT INTO people ({PERSON_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(&person.id)
            .bind(&person.external_id)
            .bind(&person.user_name)
            .bind(&person.email)
            .bind(&person.display_name)
            .bind(i64::from(person.active))
            .bind(&person.created_at)
            .bind(&person.updated_at)
            .bind(&person.manager)
            .execute(&hub.db.pool)
            .await;
    if let Err(e) = inserted {
        return internal(e);
    }
    if let Err(r) =
        log_action(&hub, &staff, "scim-user-create", format!("{} (active: {})", person.email, person.active)).await
    {
        return r;
    }
    if !person.active {
        if let Err(r) = deactivated(&hub, &staff, &person.email).await {
            return r;
        }
    }
    scim(StatusCode::CREATED, person.resource(&base(&hub)))
}

/// A person became inactive: deprovisioned at once, and said so in the admin log.
async fn deactivated(hub: &Hub, staff: &Staff, email: &str) -> Result<(), Response> {
    let mut done = people::deprovision(&hub.db, email).await.map_err(internal)?;
    done.agents_suspended =
        crate::agents::suspend_owned_by(&hub.db, email).await.map_err(|e| internal(e.to_string()))?;
    tracing::warn!(email, devices = ?done.devices_revoked, agents = ?done.agents_suspended, "person deprovisioned");
    log_action(hub, staff, "scim-deprovision", done.said(email)).await
}

/// Writes `after` over `before`; deprovisions on active → inactive.
async fn update(hub: &Hub, staff: &Staff, before: Person, after: Person) -> Response {
    let now = countersign_audit::now_rfc3339();
    let done = sqlx::query(
        "UPDATE people SET external_id = $1, user_name = $2, email = $3, display_name = $4, active = $5, updated_at = $6, \
         manager = $8 WHERE id = $7",
    )
    .bind(&after.external_id)
    .bind(&after.user_name)
    .bind(&after.email)
    .bind(&after.display_name)
    .bind(i64::from(after.active))
    .bind(&now)
    .bind(&after.id)
    .bind(&after.manager)
    .execute(&hub.db.pool)
    .await;
    if let Err(e) = done {
        return internal(e);
    }
    let detail = format!("{} (active: {} → {})", after.email, before.active, after.active);
    if let Err(r) = log_action(hub, staff, "scim-user-update", detail).await {
        return r;
    }
    // Deactivated, or renamed away from the email its devices were bound to.
    if before.active && !after.active {
        if let Err(r) = deactivated(hub, staff, &after.email).await {
            return r;
        }
    }
    if before.email != after.email {
        if let Err(r) = deactivated(hub, staff, &before.email).await {
            return r;
        }
    }
    scim(StatusCode::OK, Person { updated_at: now, ..after }.resource(&base(hub)))
}

/// For a change to User `id`: the IdP's bearer, the person and the request's JSON, or the
/// SCIM error answer.
async fn user_and_body(hub: &Hub, headers: &HeaderMap, id: &str, body: &[u8]) -> Result<(Person, Value), Response> {
    if let Some(r) = bearer_only(headers) {
        return Err(r);
    }
    let body = body_json(body).map_err(|why| scim_error(StatusCode::BAD_REQUEST, why))?;
    match find_person(hub, id).await {
        Ok(Some(p)) => Ok((p, body)),
        Ok(None) => Err(scim_error(StatusCode::NOT_FOUND, "no such User")),
        Err(e) => Err(internal(e)),
    }
}

/// `PUT /scim/v2/Users/{id}`.
pub(crate) async fn replace_user(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Extension(staff): Extension<Staff>,
    body: axum::body::Bytes,
) -> Response {
    let (before, body) = match user_and_body(&hub, &headers, &id, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let f = match user_fields(&body) {
        Ok(f) => f,
        Err(why) => return scim_error(StatusCode::BAD_REQUEST, why),
    };
    let after = Person {
        external_id: f.external_id,
        user_name: f.user_name,
        email: f.email,
        display_name: f.display_name,
        active: f.active,
        manager: f.manager,
        ..before.clone()
    };
    update(&hub, &staff, before, after).await
}

/// `PATCH /scim/v2/Users/{id}`: `replace` (or `add`) of `active`, `displayName`,
/// `userName`, `externalId`, with a path or as a value object (Okta's and Entra's shapes).
pub(crate) async fn patch_user(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Extension(staff): Extension<Staff>,
    body: axum::body::Bytes,
) -> Response {
    let (before, body) = match user_and_body(&hub, &headers, &id, &body).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Some(ops) = body.get("Operations").and_then(Value::as_array) else {
        return scim_error(StatusCode::BAD_REQUEST, format!("a PATCH is a {PATCH} with `Operations`"));
    };
    let mut after = before.clone();
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
        if kind != "replace" && kind != "add" {
            return scim_error(StatusCode::BAD_REQUEST, format!("the operation `{kind}` is not supported on a User"));
        }
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        let pairs: Vec<(String, Value)> = match op.get("path").and_then(Value::as_str) {
            Some(path) => vec![(path.to_string(), value)],
            None => match value {
                Value::Object(map) => map.into_iter().collect(),
                _ => return scim_error(StatusCode::BAD_REQUEST, "an operation without `path` carries an object"),
            },
        };
        for (path, value) in pairs {
            let text = || value.as_str().map(|s| s.chars().filter(|c| !c.is_control()).take(256).collect::<String>());
            match path.as_str() {
                "active" => match truthy(&value) {
                    Some(a) => after.active = a,
                    None => return scim_error(StatusCode::BAD_REQUEST, "`active` must be true or false"),
                },
                "displayName" => after.display_name = text(),
                "externalId" => after.external_id = text(),
                "userName" => match text() {
                    Some(u) if !u.trim().is_empty() => after.user_name = u,
                    _ => return scim_error(StatusCode::BAD_REQUEST, "`userName` cannot be empty"),
                },
                // Entra's path, Okta's extension object.
                p if p.eq_ignore_ascii_case(&format!("{ENTERPRISE}:manager")) => {
                    after.manager = manager_of(&json!({ "manager": value }))
                }
                p if p == ENTERPRISE => after.manager = manager_of(&value),
                // Other attributes (name parts, phone numbers…) are not kept.
                _ => {}
            }
        }
    }
    update(&hub, &staff, before, after).await
}

/// `DELETE /scim/v2/Users/{id}`: deprovisioned, the row kept for the audit trail.
pub(crate) async fn delete_user(State(hub): State<Arc<Hub>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let staff = match provisioner(&hub, &headers, "DELETE /scim/v2/Users/{id}").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let person = match find_person(&hub, &id).await {
        Ok(Some(p)) => p,
        Ok(None) => return scim_error(StatusCode::NOT_FOUND, "no such User"),
        Err(e) => return internal(e),
    };
    let now = countersign_audit::now_rfc3339();
    if let Err(e) = sqlx::query("UPDATE people SET active = 0, deleted_at = $1, updated_at = $1 WHERE id = $2")
        .bind(&now)
        .bind(&id)
        .execute(&hub.db.pool)
        .await
    {
        return internal(e);
    }
    if let Err(r) = log_action(&hub, &staff, "scim-user-delete", person.email.clone()).await {
        return r;
    }
    if let Err(r) = deactivated(&hub, &staff, &person.email).await {
        return r;
    }
    StatusCode::NO_CONTENT.into_response()
}

type GroupRow = (String, Option<String>, String, String, String, String);

fn group_resource(r: &GroupRow, base: &str) -> Value {
    let members: Vec<String> = serde_json::from_str(&r.3).unwrap_or_default();
    json!({
        "schemas": [GROUP], "id": r.0, "externalId": r.1, "displayName": r.2,
        "members": members.iter().map(|m| json!({ "value": m })).collect::<Vec<_>>(),
        "meta": { "resourceType": "Group", "created": r.4, "lastModified": r.5,
                  "location": format!("{base}/scim/v2/Groups/{}", r.0) }
    })
}

fn member_ids(value: &Value) -> Vec<String> {
    let items = match value {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    items.iter().filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_string)).collect()
}

/// `GET /scim/v2/Groups` (with `filter=displayName eq "…"`).
pub(crate) async fn list_groups(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Err(r) = provisioner(&hub, &headers, "GET /scim/v2/Groups").await {
        return r;
    }
    let name = match q.filter.as_deref().map(eq_filter) {
        None => None,
        Some(Some((attr, value))) if attr.eq_ignore_ascii_case("displayName") => Some(value),
        Some(_) => return scim_error(StatusCode::BAD_REQUEST, "only `displayName eq \"NAME\"` filters Groups"),
    };
    let rows: Result<Vec<GroupRow>, _> = sqlx::query_as(
        "SELECT id, external_id, display_name, members, created_at, updated_at FROM scim_groups \
         WHERE ($1 = '' OR display_name = $1) ORDER BY display_name",
    )
    .bind(name.unwrap_or_default())
    .fetch_all(&hub.db.pool)
    .await;
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let base = base(&hub);
    let all: Vec<Value> = rows.iter().map(|r| group_resource(r, &base)).collect();
    scim(
        StatusCode::OK,
        json!({ "schemas": [LIST], "totalResults": all.len(), "startIndex": 1, "itemsPerPage": all.len(), "Resources": all }),
    )
}

/// `POST /scim/v2/Groups`.
pub(crate) async fn create_group(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Extension(staff): Extension<Staff>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = bearer_only(&headers) {
        return r;
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(why) => return scim_error(StatusCode::BAD_REQUEST, why),
    };
    let Some(name) = body.get("displayName").and_then(Value::as_str).filter(|n| !n.trim().is_empty()) else {
        return scim_error(StatusCode::BAD_REQUEST, "a Group needs `displayName`");
    };
    let name: String = name.chars().filter(|c| !c.is_control()).take(256).collect();
    let members = body.get("members").map(member_ids).unwrap_or_default();
    let now = countersign_audit::now_rfc3339();
    let row: GroupRow = (
        uuid::Uuid::now_v7().to_string(),
        body.get("externalId").and_then(Value::as_str).map(str::to_string),
        name,
        serde_json::to_string(&members).unwrap_or_default(),
        now.clone(),
        now,
    );
    let done = sqlx::query(
        "INSERT INTO scim_groups (id, external_id, display_name, members, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&row.0)
    .bind(&row.1)
    .bind(&row.2)
    .bind(&row.3)
    .bind(&row.4)
    .bind(&row.5)
    .execute(&hub.db.pool)
    .await;
    if let Err(e) = done {
        return internal(e);
    }
    if let Err(r) =
        log_action(&hub, &staff, "scim-group-create", format!("{} ({} members)", row.2, members.len())).await
    {
        return r;
    }
    scim(StatusCode::CREATED, group_resource(&row, &base(&hub)))
}

/// `PATCH /scim/v2/Groups/{id}`: members added, removed or replaced; the name replaced.
pub(crate) async fn patch_group(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Extension(staff): Extension<Staff>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = bearer_only(&headers) {
        return r;
    }
    let body = match body_json(&body) {
        Ok(b) => b,
        Err(why) => return scim_error(StatusCode::BAD_REQUEST, why),
    };
    let row: Option<GroupRow> = match sqlx::query_as(
        "SELECT id, external_id, display_name, members, created_at, updated_at FROM scim_groups WHERE id = $1",
    )
    .bind(&id)
    .fetch_optional(&hub.db.pool)
    .await
    {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let Some(mut row) = row else { return scim_error(StatusCode::NOT_FOUND, "no such Group") };
    let mut members: Vec<String> = serde_json::from_str(&row.3).unwrap_or_default();
    for op in body.get("Operations").and_then(Value::as_array).cloned().unwrap_or_default() {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default().to_string();
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match (kind.as_str(), path.as_str()) {
            ("add", "members") => members.extend(member_ids(&value)),
            ("replace", "members") => members = member_ids(&value),
            ("remove", p) if p.starts_with("members[value eq") => {
                if let Some((_, gone)) = eq_filter(&p["members[".len()..p.len() - 1]) {
                    members.retain(|m| *m != gone);
                }
            }
            ("remove", "members") => {
                let gone = member_ids(&value);
                members.retain(|m| !gone.contains(m));
            }
            ("replace", "displayName") | ("replace", "") => {
                if let Some(n) = value.as_str().or_else(|| value.get("displayName").and_then(Value::as_str)) {
                    row.2 = n.chars().filter(|c| !c.is_control()).take(256).collect();
                }
            }
            _ => {
                return scim_error(
                    StatusCode::BAD_REQUEST,
                    format!("the operation `{kind} {path}` is not supported on a Group"),
                )
            }
        }
    }
    members.sort();
    members.dedup();
    row.3 = serde_json::to_string(&members).unwrap_or_default();
    row.5 = countersign_audit::now_rfc3339();
    if let Err(e) = sqlx::query("UPDATE scim_groups SET display_name = $1, members = $2, updated_at = $3 WHERE id = $4")
        .bind(&row.2)
        .bind(&row.3)
        .bind(&row.5)
        .bind(&id)
        .execute(&hub.db.pool)
        .await
    {
        return internal(e);
    }
    if let Err(r) =
        log_action(&hub, &staff, "scim-group-update", format!("{} ({} members)", row.2, members.len())).await
    {
        return r;
    }
    scim(StatusCode::OK, group_resource(&row, &base(&hub)))
}

/// `DELETE /scim/v2/Groups/{id}`.
pub(crate) async fn delete_group(State(hub): State<Arc<Hub>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let staff = match provisioner(&hub, &headers, "DELETE /scim/v2/Groups/{id}").await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match sqlx::query("DELETE FROM scim_groups WHERE id = $1").bind(&id).execute(&hub.db.pool).await {
        Ok(r) if r.rows_affected() == 1 => {}
        Ok(_) => return scim_error(StatusCode::NOT_FOUND, "no such Group"),
        Err(e) => return internal(e),
    }
    if let Err(r) = log_action(&hub, &staff, "scim-group-delete", id).await {
        return r;
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_active_read_as_the_idps_send_them() {
        assert_eq!(eq_filter("userName eq \"ana@example.com\""), Some(("userName".into(), "ana@example.com".into())));
        assert_eq!(eq_filter("userName sw \"a\""), None);
        assert_eq!(truthy(&json!("False")), Some(false));
        assert_eq!(truthy(&json!(true)), Some(true));
        assert_eq!(truthy(&json!(0)), None);
        let f = user_fields(&json!({"userName": "Ana@Example.com", "name": {"givenName": "Ana", "familyName": "A"},
                                    "emails": [{"value": "ana@example.com", "primary": "True"}], "active": "False"}))
        .unwrap();
        assert_eq!((f.email.as_str(), f.display_name.as_deref(), f.active), ("ana@example.com", Some("Ana A"), false));
        assert!(user_fields(&json!({"emails": []})).is_err());
    }
}
