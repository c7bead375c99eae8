//! `countersign-hub agent …` and `countersign-hub device …`: enterprise agents and
//! devices from the hub's host, as `/v1/agents` and `/v1/devices` do over HTTP. `agent
//! create` prints the agent's enrollment token alone on stdout (for scripts); every
//! change is in the admin log, named as the CLI's.

use crate::{cli_actor, open, DbArgs};
use anyhow::Result;
use clap::Subcommand;
use countersign_hub::agents::{self, NewAgent};
use countersign_hub::callers::{log_action_db, Staff};

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Register an agent and print its enrollment token (alone on stdout); its host
    /// enrolls with `countersign enroll HUB_URL TOKEN --agent NAME`.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// Letters, digits, `-`, `_`, `.`; records name it `agent:NAME`.
        name: String,
        /// The person who answers for it (their email).
        #[arg(long)]
        owner: String,
        /// Who approves its requests: an email or `group:NAME`; repeat for more (default:
        /// the owner).
        #[arg(long = "approver", value_name = "EMAIL|group:NAME")]
        approvers: Vec<String>,
        /// What it is for.
        #[arg(long)]
        purpose: Option<String>,
        /// When its access is reviewed (YYYY-MM-DD); past it, the agent is flagged.
        #[arg(long)]
        review_date: Option<String>,
        /// How long the enrollment token stays valid.
        #[arg(long, default_value_t = 24)]
        token_hours: u64,
    },
    /// List the agents: owner, approvers, review date, suspension.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        json: bool,
    },
    /// Suspend an agent: its calls are denied, naming WHY.
    Suspend {
        #[command(flatten)]
        db: DbArgs,
        name: String,
        #[arg(long, default_value = "suspended by an admin")]
        why: String,
    },
    /// Lift a suspension (refused while its owner stays deactivated: transfer instead).
    Resume {
        #[command(flatten)]
        db: DbArgs,
        name: String,
    },
    /// Give an agent a new owner (ends a suspension for its old owner's deactivation).
    Transfer {
        #[command(flatten)]
        db: DbArgs,
        name: String,
        #[arg(long)]
        owner: String,
    },
}

pub async fn run(command: AgentCommand) -> Result<()> {
    let cli = Staff::new(cli_actor(), vec![countersign_hub::roles::Role::Admin]);
    match command {
        AgentCommand::Create { db, name, owner, approvers, purpose, review_date, token_hours } => {
            let db = open(&db).await?;
            let new = NewAgent { name, owner, approvers, purpose, review_date, token_hours };
            let (agent, token) = agents::create(&db, &new, &cli.actor).await?;
            log_action_db(&db, &cli, "agent-create", countersign_hub::agent_routes::created(&agent)).await?;
            println!("{token}");
            eprintln!(
                "agent `{}` owned by {}; its host enrolls with: countersign enroll HUB_URL TOKEN --agent {}",
                agent.name, agent.owner, agent.name
            );
        }
        AgentCommand::List { db, json } => {
            let list = agents::list(&open(&db).await?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for a in list {
                    let mut flags = Vec::new();
                    if let Some(why) = &a.suspended_why {
                        flags.push(format!("SUSPENDED: {why}"));
                    }
                    if a.review_overdue {
                        flags.push(format!("review overdue since {}", a.review_date.clone().unwrap_or_default()));
                    }
                    println!(
                        "{:<24} owner {}  approvers {}  {}",
                        a.name,
                        a.owner,
                        a.approvers.join(","),
                        flags.join("; ")
                    );
                }
            }
        }
        AgentCommand::Suspend { db, name, why } => {
            let db = open(&db).await?;
            let a = agents::suspend(&db, &name, &why).await?;
            log_action_db(&db, &cli, "agent-suspend", format!("agent `{}` suspended: {why}", a.name)).await?;
            eprintln!("agent `{}` suspended", a.name);
        }
        AgentCommand::Resume { db, name } => {
            let db = open(&db).await?;
            let a = agents::resume(&db, &name).await?;
            log_action_db(&db, &cli, "agent-resume", format!("agent `{}` resumed", a.name)).await?;
            eprintln!("agent `{}` resumed", a.name);
        }
        AgentCommand::Transfer { db, name, owner } => {
            let db = open(&db).await?;
            let (a, before) = agents::transfer(&db, &name, &owner).await?;
            let detail = format!("agent `{}` transferred from {before} to {}", a.name, a.owner);
            log_action_db(&db, &cli, "agent-transfer", detail.clone()).await?;
            eprintln!("{detail}");
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Revoke a device: its credential opens nothing from now on (its gateway stops
    /// syncing and keeps its local policy); its records stay.
    Revoke {
        #[command(flatten)]
        db: DbArgs,
        /// The hub's device id (`GET /v1/devices`).
        id: String,
        #[arg(long, default_value = "revoked by an admin")]
        why: String,
    },
}

pub async fn device(command: DeviceCommand) -> Result<()> {
    let cli = Staff::new(cli_actor(), vec![countersign_hub::roles::Role::Admin]);
    match command {
        DeviceCommand::Revoke { db, id, why } => {
            let db = open(&db).await?;
            if !countersign_hub::device_admin::revoke(&db, &id, &why).await? {
                anyhow::bail!("no live device `{id}`");
            }
            log_action_db(&db, &cli, "device-revoke", format!("device {id}: {why}")).await?;
            eprintln!("device {id} revoked");
        }
    }
    Ok(())
}
