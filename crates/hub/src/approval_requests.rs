//! Routed approvals: a call a device's policy routes to someone else (an agent's owner, a
//! person, a group) waits here for them. The request names who asks (the device's
//! verified person or agent, never what the device claims), the call (tool, class,
//! arguments as redacted for records, the hash of the exact arguments) and who may
//! answer, resolved when it is raised. The approvers' devices list what waits for their
//! person; the first valid answer wins; the asking device polls for it.
//!
//! An answer counts only from a device bound to a verified, active person who is
//! eligible, carrying the request's nonce and arguments hash, before the deadline, and
//! (under separation of duties) not from the asker. Everything refused is said, and the
//! routes write the admin log. It never lets an unverified device ask or answer.

use crate::db::{Db, DbError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most requests one device may have pending at once (each is a prompt on someone's
/// screen).
pub const PENDING_PER_DEVICE: i64 = 16;

/// Longest and shortest a request may wait.
pub const MAX_WAIT_SECS: u64 = 24 * 3600;
pub const MIN_WAIT_SECS: u64 = 10;

/// What an asking device sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// The device's own id for the call (its prompt's id): a retry is the same request.
    pub id: String,
    pub client: String,
    pub server: String,
    pub tool: String,
    pub class: String,
    /// As the device's journal records them (redacted).
    pub arguments: Value,
    pub args_hash: String,
    pub rule: Option<String>,
    pub reason: String,
    pub policy_version: String,
    /// As policy names it: `owner`, `manager`, an email, `group:NAME`.
    pub approver: String,
    pub self_approval: bool,
    pub wait_secs: u64,
}

/// A request as the asking device and the approvers see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Request {
    pub id: String,
    pub device_id: String,
    pub device_name: String,
    pub requester: String,
    pub client: String,
    pub server: String,
    pub tool: String,
    pub class: String,
    pub arguments: Value,
    pub args_hash: String,
    pub rule: Option<String>,
    pub reason: String,
    pub policy_version: String,
    pub approver: String,
    pub self_approval: bool,
    pub eligible: Vec<String>,
    pub created_at: String,
    pub deadline_ms: u64,
    pub state: String,
    pub answered_by: Option<String>,
    pub answered_at: Option<String>,
}

/// An answer from an approver's device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAnswer {
    /// `allow` or `deny`.
    pub verdict: String,
    pub nonce: String,
    pub args_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// Not something this caller may do (the status is 403).
    #[error("{0}")]
    Forbidden(String),
    /// The request cannot be raised as sent (422).
    #[error("{0}")]
    Unroutable(String),
    /// The answer does not match what was shown (409).
    #[error("{0}")]
    Mismatch(String),
    /// Answered, withdrawn or past its deadline (410).
    #[error("{0}")]
    Closed(String),
    /// Too many requests of one device wait already (429).
    #[error("{0}")]
    TooMany(String),
    #[error("no approval request `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ApprovalError {
    fn from(e: sqlx::Error) -> Self {
        ApprovalError::Db(e.into())
    }
}

/// Who a device acts for: its verified person, or its agent with the agent's owner and
/// approvers.
#[derive(Debug, Clone)]
pub struct Asker {
    pub device_id: String,
    pub device_name: String,
    pub person: Option<String>,
    pub agent: Option<crate::agents::Agent>,
}

impl Asker {
    pub fn name(&self) -> Option<String> {
        match (&self.agent, &self.person) {
            (Some(a), _) => Some(format!("agent:{}", a.name)),
            (None, Some(p)) => Some(p.clone()),
            (None, None) => None,
        }
    }
}

/// The device behind a credential, as who it acts for.
pub async fn asker(db: &Db, device_id: &str) -> Result<Asker, ApprovalError> {
    let row: Option<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT name, person_email, agent FROM devices WHERE id = $1")
            .bind(device_id)
            .fetch_optional(&db.pool)
            .await?;
    let (device_name, person, agent) = row.ok_or_else(|| ApprovalError::NotFound(device_id.to_string()))?;
    let agent = match agent {
        Some(name) => Some(crate::agents::find(db, &name).await.map_err(|e| ApprovalError::Bad(e.to_string()))?),
        None => None,
    };
    Ok(Asker { device_id: device_id.to_string(), device_name, person, agent })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The emails in group `name` (active people only).
async fn group_members(db: &Db, name: &str) -> Result<Vec<String>, ApprovalError> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT members FROM scim_groups WHERE display_name = $1")
        .bind(name)
        .fetch_all(&db.pool)
        .await?;
    let mut emails = Vec::new();
    for (members,) in rows {
        let ids: Vec<String> = serde_json::from_str(&members).unwrap_or_default();
        for id in ids {
            let person: Option<(String,)> =
                sqlx::query_as("SELECT email FROM people WHERE id = $1 AND active = 1 AND deleted_at IS NULL")
                    .bind(&id)
                    .fetch_optional(&db.pool)
                    .await?;
            emails.extend(person.map(|(e,)| e.to_lowercase()));
        }
    }
    Ok(emails)
}

/// Whether `person` is in one of the `group:NAME` entries of `approvers`.
async fn group_approver(db: &Db, approvers: &[String], person: &str) -> Result<bool, ApprovalError> {
    for a in approvers {
        if let Some(g) = a.strip_prefix("group:") {
            if group_members(db, g).await?.iter().any(|m| m == person) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// `person`'s manager's email, as the IdP provisioned it (the manager named by the hub's
/// id, the IdP's external id, user name or email; active people only).
async fn manager_email(db: &Db, person: &str) -> Result<Option<String>, ApprovalError> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT manager FROM people WHERE email = $1 AND active = 1 AND deleted_at IS NULL")
            .bind(person.to_lowercase())
            .fetch_optional(&db.pool)
            .await?;
    let Some(manager) = row.and_then(|(m,)| m) else { return Ok(None) };
    let found: Option<(String,)> = sqlx::query_as(
        "SELECT email FROM people WHERE (id = $1 OR external_id = $1 OR user_name = $1 OR email = $2) \
         AND active = 1 AND deleted_at IS NULL",
    )
    .bind(&manager)
    .bind(manager.to_lowercase())
    .fetch_optional(&db.pool)
    .await?;
    Ok(found.map(|(e,)| e.to_lowercase()))
}

/// Who may answer `approver` for `asker`, the asker left out when `self_approval` is off.
async fn eligible(db: &Db, asker: &Asker, approver: &str, self_approval: bool) -> Result<Vec<String>, ApprovalError> {
    let mut who: Vec<String> = match approver {
        "self" => return Err(ApprovalError::Unroutable("`self` is answered on the device, not routed".into())),
        "owner" => {
            let agent = asker.agent.as_ref().ok_or_else(|| {
                ApprovalError::Unroutable(
                    "policy routes this to an agent's owner, but this device is no agent's".into(),
                )
            })?;
            let mut who = vec![agent.owner.to_lowercase()];
            for a in &agent.approvers {
                match a.strip_prefix("group:") {
                    Some(g) => who.extend(group_members(db, g).await?),
                    None => who.push(a.to_lowercase()),
                }
            }
            who
        }
        "manager" => {
            let person = asker.person.as_deref().filter(|_| asker.agent.is_none()).ok_or_else(|| {
                ApprovalError::Unroutable("policy routes this to the asker's manager, but an agent has none".into())
            })?;
            vec![manager_email(db, person).await?.ok_or_else(|| {
                ApprovalError::Unroutable(format!(
                    "policy routes this to {person}'s manager, and the IdP has not provisioned one"
                ))
            })?]
        }
        other => match other.strip_prefix("group:") {
            Some(g) => group_members(db, g).await?,
            None if other.contains('@') => vec![other.to_lowercase()],
            None => return Err(ApprovalError::Bad(format!("`{other}` is not an approver"))),
        },
    };
    who.sort();
    who.dedup();
    if !self_approval {
        if let Some(p) = &asker.person {
            who.retain(|w| w != &p.to_lowercase());
        }
    }
    // A deactivated person answers nothing.
    let mut active = Vec::with_capacity(who.len());
    for w in who {
        if !crate::people::is_deactivated(db, &w).await? {
            active.push(w);
        }
    }
    if active.is_empty() {
        return Err(ApprovalError::Unroutable(format!("nobody can answer: `{approver}` names no one who may")));
    }
    Ok(active)
}

/// Whether the route a device asks for agrees with the published policy: where the signed
/// bundle routes a call, the request must name that approver, and may not waive
/// separation of duties the bundle keeps. (The class is the device's word: a route
/// written by tool name holds whatever it says.) `Ok(true)`: the bundle routes the call,
/// so its `self_approval` is IT's word; `Ok(false)`: the route is the device's own, and
/// the asker never answers it (else any device could name itself and record an
/// "approved by" that is only self-approval).
pub fn check_route(
    published: Option<&countersign_policy::PolicySettings>,
    new: &NewRequest,
) -> Result<bool, ApprovalError> {
    let Some(bundle) = published else { return Ok(false) };
    let layers = countersign_policy::Layers { bundle: Some((bundle.clone(), 0)), ..Default::default() };
    let Ok(policy) = countersign_policy::Policy::from_layers(layers) else { return Ok(false) };
    let class =
        serde_json::from_value(Value::String(new.class.clone())).unwrap_or(countersign_policy::ToolClass::Write);
    let route = policy.route_for(&new.server, &new.tool, class, &new.client, &new.arguments);
    if route.rule.is_none() {
        return Ok(false);
    }
    let named = route.approver.text();
    if named != new.approver || (!route.self_approval && new.self_approval) {
        return Err(ApprovalError::Forbidden(format!(
            "the published policy routes `{}.{}` to `{named}`{}, not `{}` as this device asks",
            new.server,
            new.tool,
            if route.self_approval { "" } else { " (never the asker)" },
            new.approver
        )));
    }
    Ok(true)
}

/// Raises a request (or returns the one this device raised already under that id).
pub async fn raise(db: &Db, asker: &Asker, new: &NewRequest) -> Result<(Request, String), ApprovalError> {
    let requester = asker.name().ok_or_else(|| {
        ApprovalError::Forbidden("a routed approval needs a verified identity: enroll this device by signing in".into())
    })?;
    if let Some(agent) = &asker.agent {
        if let Some(why) = &agent.suspended_why {
            return Err(ApprovalError::Forbidden(format!("agent `{}` is suspended: {why}", agent.name)));
        }
    }
    if new.id.is_empty() || new.id.len() > 64 || !new.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApprovalError::Bad("`id` must be 1-64 letters, digits or dashes".into()));
    }
    if let Some(existing) = find(db, &new.id).await? {
        if existing.0.device_id != asker.device_id {
            return Err(ApprovalError::Forbidden(format!("request `{}` belongs to another device", new.id)));
        }
        return Ok(existing);
    }
    let pending: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM approval_requests WHERE device_id = $1 AND state = 'pending' AND deadline_ms > $2",
    )
    .bind(&asker.device_id)
    .bind(now_ms() as i64)
    .fetch_one(&db.pool)
    .await?;
    if pending.0 >= PENDING_PER_DEVICE {
        return Err(ApprovalError::TooMany(format!(
            "this device has {} approval requests waiting already; answer or withdraw some first",
            pending.0
        )));
    }
    let eligible = eligible(db, asker, &new.approver, new.self_approval).await?;
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let wait = new.wait_secs.clamp(MIN_WAIT_SECS, MAX_WAIT_SECS);
    let deadline_ms = now_ms() + wait * 1000;
    sqlx::query(
        "INSERT INTO approval_requests (id, device_id, device_name, requester, requester_person, client, server, \
         tool, class, arguments, args_hash, rule, reason, policy_version, approver, self_approval, eligible, nonce, \
         created_at, deadline_ms, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19, $20, 'pending')",
    )
    .bind(&new.id)
    .bind(&asker.device_id)
    .bind(&asker.device_name)
    .bind(&requester)
    .bind(asker.person.as_deref().map(str::to_lowercase))
    .bind(&new.client)
    .bind(&new.server)
    .bind(&new.tool)
    .bind(&new.class)
    .bind(new.arguments.to_string())
    .bind(&new.args_hash)
    .bind(&new.rule)
    .bind(&new.reason)
    .bind(&new.policy_version)
    .bind(&new.approver)
    .bind(i64::from(new.self_approval))
    .bind(serde_json::to_string(&eligible).unwrap_or_default())
    .bind(&nonce)
    .bind(countersign_audit::now_rfc3339())
    .bind(deadline_ms as i64)
    .execute(&db.pool)
    .await?;
    find(db, &new.id).await?.ok_or_else(|| ApprovalError::NotFound(new.id.clone()))
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    device_id: String,
    device_name: String,
    requester: String,
    requester_person: Option<String>,
    client: String,
    server: String,
    tool: String,
    class: String,
    arguments: String,
    args_hash: String,
    rule: Option<String>,
    reason: String,
    policy_version: String,
    approver: String,
    self_approval: i64,
    eligible: String,
    nonce: String,
    created_at: String,
    deadline_ms: i64,
    state: String,
    answered_by: Option<String>,
    answered_at: Option<String>,
}

const COLUMNS: &str = "id, device_id, device_name, requester, requester_person, client, server, tool, class, \
    arguments, args_hash, rule, reason, policy_version, approver, self_approval, eligible, nonce, created_at, \
    deadline_ms, state, answered_by, answered_at";

/// A request and its nonce (the asker's person, for separation of duties, is in
/// `Request::requester` or, for an agent, nowhere).
fn request_of(r: Row) -> (Request, String, Option<String>) {
    let state = match r.state.as_str() {
        "pending" if now_ms() >= r.deadline_ms as u64 => "expired".to_string(),
        s => s.to_string(),
    };
    (
        Request {
            id: r.id,
            device_id: r.device_id,
            device_name: r.device_name,
            requester: r.requester,
            client: r.client,
            server: r.server,
            tool: r.tool,
            class: r.class,
            arguments: serde_json::from_str(&r.arguments).unwrap_or(Value::Null),
            args_hash: r.args_hash,
            rule: r.rule,
            reason: r.reason,
            policy_version: r.policy_version,
            approver: r.approver,
            self_approval: r.self_approval != 0,
            eligible: serde_json::from_str(&r.eligible).unwrap_or_default(),
            created_at: r.created_at,
            deadline_ms: r.deadline_ms as u64,
            state,
            answered_by: r.answered_by,
            answered_at: r.answered_at,
        },
        r.nonce,
        r.requester_person,
    )
}

/// Request `id` and its nonce.
pub async fn find(db: &Db, id: &str) -> Result<Option<(Request, String)>, ApprovalError> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM approval_requests WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(request_of).map(|(r, n, _)| (r, n)))
}

/// What waits for `person` now, with each request's nonce, oldest first.
pub async fn waiting_for(db: &Db, person: &str) -> Result<Vec<(Request, String)>, ApprovalError> {
    let person = person.to_lowercase();
    // Only rows naming the person (their quoted email in the JSON list) are read; the
    // exact check follows.
    let quoted = serde_json::to_string(&person).unwrap_or_default();
    let pattern = format!("%{}%", quoted.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM approval_requests WHERE state = 'pending' AND deadline_ms > $1 \
         AND eligible LIKE $2 ESCAPE '\\' ORDER BY created_at, id"
    ))
    .bind(now_ms() as i64)
    .bind(pattern)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(request_of)
        .filter(|(r, _, asker)| {
            r.eligible.contains(&person) && (r.self_approval || asker.as_deref() != Some(person.as_str()))
        })
        .map(|(r, n, _)| (r, n))
        .collect())
}

/// Answers request `id` as `person` from `device`: the first valid answer wins.
pub async fn answer(
    db: &Db,
    id: &str,
    person: &str,
    device: &str,
    answer: &NewAnswer,
) -> Result<Request, ApprovalError> {
    let person = person.to_lowercase();
    let approve = match answer.verdict.as_str() {
        "allow" | "approve" => true,
        "deny" => false,
        other => return Err(ApprovalError::Bad(format!("`{other}` is not allow or deny"))),
    };
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM approval_requests WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    let (request, nonce, asker) = request_of(row.ok_or_else(|| ApprovalError::NotFound(id.to_string()))?);
    if request.state != "pending" {
        return Err(ApprovalError::Closed(format!("request `{id}` is {} already", request.state)));
    }
    if crate::people::is_deactivated(db, &person).await? {
        return Err(ApprovalError::Forbidden(format!("{person} is deactivated")));
    }
    // A suspended agent's requests run nothing, whoever answers.
    if let Some(name) = request.requester.strip_prefix("agent:") {
        let agent = crate::agents::find(db, name).await.map_err(|e| ApprovalError::Bad(e.to_string()))?;
        if let Some(why) = agent.suspended_why {
            return Err(ApprovalError::Closed(format!("agent `{name}` is suspended: {why}")));
        }
    }
    // Eligibility is the one the request was raised under, less whoever left since: a
    // group member removed, an agent's owner transferred away.
    let still = match request.approver.as_str() {
        a if a.starts_with("group:") => group_members(db, &a["group:".len()..]).await?.contains(&person),
        "owner" => match request.requester.strip_prefix("agent:") {
            Some(name) => {
                let agent = crate::agents::find(db, name).await.map_err(|e| ApprovalError::Bad(e.to_string()))?;
                agent.owner.eq_ignore_ascii_case(&person)
                    || agent.approvers.iter().any(|a| a.eq_ignore_ascii_case(&person))
                    || group_approver(db, &agent.approvers, &person).await?
            }
            None => false,
        },
        _ => true,
    };
    if !request.eligible.contains(&person) || !still {
        return Err(ApprovalError::Forbidden(format!(
            "{person} is not an approver of request `{id}` (policy names `{}`)",
            request.approver
        )));
    }
    if !request.self_approval && asker.as_deref() == Some(person.as_str()) {
        return Err(ApprovalError::Forbidden(format!(
            "separation of duties: {person} asked for request `{id}` and cannot answer it"
        )));
    }
    if !constant_time_eq(answer.nonce.as_bytes(), nonce.as_bytes()) {
        return Err(ApprovalError::Mismatch("the answer does not carry this request's nonce".into()));
    }
    if answer.args_hash != request.args_hash {
        return Err(ApprovalError::Mismatch("the arguments answered are not the request's".into()));
    }
    let state = if approve { "approved" } else { "denied" };
    let done = sqlx::query(
        "UPDATE approval_requests SET state = $1, answered_by = $2, answered_device = $3, answered_at = $4 \
         WHERE id = $5 AND state = 'pending' AND deadline_ms > $6",
    )
    .bind(state)
    .bind(&person)
    .bind(device)
    .bind(countersign_audit::now_rfc3339())
    .bind(id)
    .bind(now_ms() as i64)
    .execute(&db.pool)
    .await?
    .rows_affected();
    if done != 1 {
        return Err(ApprovalError::Closed(format!("request `{id}` was answered, withdrawn or expired first")));
    }
    find(db, id).await?.map(|(r, _)| r).ok_or_else(|| ApprovalError::NotFound(id.to_string()))
}

/// The asking device withdraws its request (its call is gone or was denied locally).
pub async fn withdraw(db: &Db, id: &str, device: &str) -> Result<bool, ApprovalError> {
    let done = sqlx::query(
        "UPDATE approval_requests SET state = 'withdrawn' WHERE id = $1 AND device_id = $2 AND state = 'pending'",
    )
    .bind(id)
    .bind(device)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(done == 1)
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(tool: &str, approver: &str, self_approval: bool) -> NewRequest {
        NewRequest {
            id: "r1".into(),
            client: "cursor".into(),
            server: "github".into(),
            tool: tool.into(),
            class: "write".into(),
            arguments: serde_json::json!({}),
            args_hash: "h".into(),
            rule: None,
            reason: "r".into(),
            policy_version: "v".into(),
            approver: approver.into(),
            self_approval,
            wait_secs: 60,
        }
    }

    #[test]
    fn a_device_cannot_reroute_what_the_published_policy_routes() {
        let bundle: countersign_policy::PolicySettings = toml::from_str(
            "[[approvers]]\nrule = \"mcp__github__*\"\napprover = \"group:it\"\nself_approval = false\n",
        )
        .unwrap();
        let b = Some(&bundle);
        assert!(check_route(b, &request("create_issue", "group:it", false)).unwrap(), "the bundle's route");
        let err = check_route(b, &request("create_issue", "pia@example.com", true)).unwrap_err();
        assert!(err.to_string().contains("routes `github.create_issue` to `group:it`"), "{err}");
        assert!(check_route(b, &request("create_issue", "group:it", true)).is_err(), "separation kept");
        // What the bundle does not route is the device's own business; nothing published, too.
        let elsewhere = NewRequest { server: "fs".into(), ..request("write_file", "pia@example.com", true) };
        assert!(!check_route(b, &elsewhere).unwrap(), "the device's own route");
        assert!(!check_route(None, &request("create_issue", "pia@example.com", true)).unwrap());
    }
}
