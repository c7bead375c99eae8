//! Enterprise agents: service principals with an owner (a person) who answers for them,
//! approvers (people or `group:NAME`), a purpose and a review date. Registering one mints
//! an enrollment token that enrolls only that agent's host; the host's records then name
//! `agent:NAME` and its owner. An agent is suspended by an admin, or when its owner is
//! deactivated, until resumed or transferred to another owner; past its review date it is
//! flagged. The HTTP routes are in [`crate::agent_routes`], the CLI's in main.rs; both
//! come here, and the caller writes the admin log.
//!
//! It never keeps an enrollment token in plain text and never lets a name or an email
//! that is not one through.

use crate::auth;
use crate::db::{Db, DbError};
use serde::Serialize;

/// An agent as the hub keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub approvers: Vec<String>,
    pub purpose: Option<String>,
    /// `YYYY-MM-DD`.
    pub review_date: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub suspended_at: Option<String>,
    pub suspended_why: Option<String>,
    /// Its review date has passed.
    pub review_overdue: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Invalid(String),
    #[error("an agent named `{0}` exists already")]
    Exists(String),
    #[error("no agent named `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for AgentError {
    fn from(e: sqlx::Error) -> Self {
        AgentError::Db(e.into())
    }
}

/// What an admin registers.
#[derive(Debug, Clone, Default)]
pub struct NewAgent {
    pub name: String,
    pub owner: String,
    pub approvers: Vec<String>,
    pub purpose: Option<String>,
    pub review_date: Option<String>,
    /// How long its enrollment token is good for.
    pub token_hours: u64,
}

/// An agent's name: letters, digits, `-`, `_`, `.`, 1 to 64 of them (it is part of
/// `agent:NAME` in every record).
pub fn check_name(name: &str) -> Result<(), AgentError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(()).ok_or_else(|| {
        AgentError::Invalid(format!(
            "`{}` is not an agent name: 1 to 64 letters, digits, `-`, `_` or `.`",
            name.chars().take(80).collect::<String>()
        ))
    })
}

/// An email as the IdP names a person: one `@`, no spaces or control characters; lower case.
pub fn check_email(what: &str, email: &str) -> Result<String, AgentError> {
    let email = email.trim().to_lowercase();
    let ok = email.len() <= 254
        && email.split('@').count() == 2
        && !email.starts_with('@')
        && !email.ends_with('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(email.clone()).ok_or_else(|| AgentError::Invalid(format!("{what} `{email}` is not an email")))
}

/// An approver: an email, or `group:NAME`.
fn check_approver(approver: &str) -> Result<String, AgentError> {
    match approver.trim().strip_prefix("group:") {
        Some(group) if !group.is_empty() && group.len() <= 256 && !group.chars().any(char::is_control) => {
            Ok(format!("group:{group}"))
        }
        Some(_) => Err(AgentError::Invalid(format!("`{approver}` is not a group (group:NAME)"))),
        None => check_email("the approver", approver),
    }
}

fn check_date(date: &str) -> Result<String, AgentError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(date.trim(), &format)
        .map(|_| date.trim().to_string())
        .map_err(|_| AgentError::Invalid(format!("the review date `{date}` is not YYYY-MM-DD")))
}

fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Registers an agent and mints its enrollment token (returned once, in plain text).
pub async fn create(db: &Db, new: &NewAgent, by: &str) -> Result<(Agent, String), AgentError> {
    check_name(&new.name)?;
    let owner = check_email("the owner", &new.owner)?;
    let approvers = if new.approvers.is_empty() {
        vec![owner.clone()]
    } else {
        new.approvers.iter().map(|a| check_approver(a)).collect::<Result<Vec<_>, _>>()?
    };
    let review_date = new.review_date.as_deref().map(check_date).transpose()?;
    let purpose = new.purpose.as_deref().map(|p| p.chars().filter(|c| !c.is_control()).take(500).collect::<String>());
    if !(1..=24 * 30).contains(&new.token_hours) {
        return Err(AgentError::Invalid("the enrollment token lasts 1 hour to 30 days".into()));
    }
    let taken: Option<(String,)> =
        sqlx::query_as("SELECT id FROM agents WHERE name = $1").bind(&new.name).fetch_optional(&db.pool).await?;
    if taken.is_some() {
        return Err(AgentError::Exists(new.name.clone()));
    }
    let agent = Agent {
        id: uuid::Uuid::now_v7().to_string(),
        name: new.name.clone(),
        owner,
        approvers,
        purpose,
        review_date,
        created_at: countersign_audit::now_rfc3339(),
        created_by: by.to_string(),
        suspended_at: None,
        suspended_why: None,
        review_overdue: false,
    };
    let mut tx = db.pool.begin().await?;
    sqlx::query(
        "INSERT INTO agents (id, name, owner_email, approvers, purpose, review_date, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&agent.id)
    .bind(&agent.name)
    .bind(&agent.owner)
    .bind(serde_json::to_string(&agent.approvers).unwrap_or_default())
    .bind(&agent.purpose)
    .bind(&agent.review_date)
    .bind(&agent.created_at)
    .bind(&agent.created_by)
    .execute(&mut *tx)
    .await
    .map_err(|e| match e.to_string().to_lowercase().contains("unique") {
        true => AgentError::Exists(agent.name.clone()),
        false => e.into(),
    })?;
    let token = auth::new_token("cse_");
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    sqlx::query("INSERT INTO enrollment_tokens (token_sha256, created_at, expires_at, agent) VALUES ($1, $2, $3, $4)")
        .bind(auth::digest(&token))
        .bind(fmt(now))
        .bind(fmt(now + time::Duration::hours(new.token_hours as i64)))
        .bind(&agent.name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((agent, token))
}

type Row =
    (String, String, String, String, Option<String>, Option<String>, String, String, Option<String>, Option<String>);
const COLUMNS: &str = "id, name, owner_email, approvers, purpose, review_date, created_at, created_by, suspended_at, \
                       suspended_why";

fn agent_of(row: Row) -> Agent {
    let (id, name, owner, approvers, purpose, review_date, created_at, created_by, suspended_at, suspended_why) = row;
    let today = today();
    Agent {
        review_overdue: review_date.as_deref().is_some_and(|d| d < today.as_str()),
        id,
        name,
        owner,
        approvers: serde_json::from_str(&approvers).unwrap_or_default(),
        purpose,
        review_date,
        created_at,
        created_by,
        suspended_at,
        suspended_why,
    }
}

/// Every agent, by name.
pub async fn list(db: &Db) -> Result<Vec<Agent>, AgentError> {
    let rows: Vec<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM agents ORDER BY name")).fetch_all(&db.pool).await?;
    Ok(rows.into_iter().map(agent_of).collect())
}

/// The agent named `name`.
pub async fn find(db: &Db, name: &str) -> Result<Agent, AgentError> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM agents WHERE name = $1"))
        .bind(name)
        .fetch_optional(&db.pool)
        .await?;
    row.map(agent_of).ok_or_else(|| AgentError::NotFound(name.chars().take(80).collect()))
}

/// Suspends `name` (its calls are denied, naming `why`).
pub async fn suspend(db: &Db, name: &str, why: &str) -> Result<Agent, AgentError> {
    let why: String = why.chars().filter(|c| !c.is_control()).take(300).collect();
    let why = if why.trim().is_empty() { "suspended by an admin".to_string() } else { why };
    let done = sqlx::query("UPDATE agents SET suspended_at = $1, suspended_why = $2 WHERE name = $3")
        .bind(countersign_audit::now_rfc3339())
        .bind(&why)
        .bind(name)
        .execute(&db.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(AgentError::NotFound(name.chars().take(80).collect()));
    }
    find(db, name).await
}

/// Lifts `name`'s suspension; refused while its owner stays deactivated (transfer it).
pub async fn resume(db: &Db, name: &str) -> Result<Agent, AgentError> {
    let agent = find(db, name).await?;
    if crate::people::is_deactivated(db, &agent.owner).await? {
        return Err(AgentError::Invalid(format!(
            "the owner {} is deactivated: transfer the agent to another owner instead",
            agent.owner
        )));
    }
    sqlx::query("UPDATE agents SET suspended_at = NULL, suspended_why = NULL WHERE name = $1")
        .bind(name)
        .execute(&db.pool)
        .await?;
    find(db, name).await
}

/// Gives `name` a new owner; a suspension for the old owner's deactivation ends with it.
pub async fn transfer(db: &Db, name: &str, owner: &str) -> Result<(Agent, String), AgentError> {
    let owner = check_email("the owner", owner)?;
    if crate::people::is_deactivated(db, &owner).await? {
        return Err(AgentError::Invalid(format!("{owner} is deactivated and cannot own an agent")));
    }
    let before = find(db, name).await?;
    sqlx::query(
        "UPDATE agents SET owner_email = $1, \
         suspended_at = CASE WHEN suspended_why LIKE 'owner %' THEN NULL ELSE suspended_at END, \
         suspended_why = CASE WHEN suspended_why LIKE 'owner %' THEN NULL ELSE suspended_why END \
         WHERE name = $2",
    )
    .bind(&owner)
    .bind(name)
    .execute(&db.pool)
    .await?;
    Ok((find(db, name).await?, before.owner))
}

/// Suspends every agent `owner` owns, saying they were deactivated; their names.
pub async fn suspend_owned_by(db: &Db, owner: &str) -> Result<Vec<String>, AgentError> {
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM agents WHERE owner_email = $1 AND suspended_at IS NULL")
            .bind(owner)
            .fetch_all(&db.pool)
            .await?;
    sqlx::query(
        "UPDATE agents SET suspended_at = $1, suspended_why = $2 WHERE owner_email = $3 AND suspended_at IS NULL",
    )
    .bind(countersign_audit::now_rfc3339())
    .bind(format!("owner {owner} was deactivated in the identity provider; an admin transfers it to a new owner"))
    .bind(owner)
    .execute(&db.pool)
    .await?;
    Ok(names.into_iter().map(|(n,)| n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_emails_approvers_and_dates_are_checked() {
        assert!(check_name("ci-runner.prod_1").is_ok());
        for bad in ["", "agent:x", "a b", "<script>", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(check_email("o", " Ana@Example.com ").unwrap(), "ana@example.com");
        for bad in ["ana", "@example.com", "ana@", "a@b@c", "a b@c", "a\n@b"] {
            assert!(check_email("o", bad).is_err(), "{bad}");
        }
        assert_eq!(check_approver("group:it-approvers").unwrap(), "group:it-approvers");
        assert!(check_approver("group:").is_err());
        assert!(check_date("2027-01-31").is_ok());
        assert!(check_date("31/01/2027").is_err());
    }

    #[tokio::test]
    async fn an_agent_is_registered_once_suspended_with_its_owner_and_transferred() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        let new = NewAgent {
            name: "ci-runner".into(),
            owner: "ana@example.com".into(),
            approvers: vec!["group:it-approvers".into()],
            purpose: Some("builds".into()),
            review_date: Some("2020-01-01".into()),
            token_hours: 24,
        };
        let (agent, token) = create(&db, &new, "test").await.unwrap();
        assert!(token.starts_with("cse_") && agent.approvers == ["group:it-approvers"]);
        assert!(matches!(create(&db, &new, "test").await, Err(AgentError::Exists(_))));
        assert!(find(&db, "ci-runner").await.unwrap().review_overdue, "2020 is past");
        assert_eq!(suspend_owned_by(&db, "ana@example.com").await.unwrap(), ["ci-runner"]);
        let suspended = find(&db, "ci-runner").await.unwrap();
        assert!(suspended.suspended_why.unwrap().contains("ana@example.com was deactivated"));
        let (moved, before) = transfer(&db, "ci-runner", "ivan@example.com").await.unwrap();
        assert_eq!((moved.owner.as_str(), before.as_str()), ("ivan@example.com", "ana@example.com"));
        assert_eq!(moved.suspended_at, None, "a transfer ends a suspension for the old owner");
        let by_admin = suspend(&db, "ci-runner", "under investigation").await.unwrap();
        let (still, _) = transfer(&db, "ci-runner", "pia@example.com").await.unwrap();
        assert_eq!(still.suspended_at, by_admin.suspended_at, "an admin's suspension outlives a transfer");
        assert_eq!(resume(&db, "ci-runner").await.unwrap().suspended_at, None);
    }
}
