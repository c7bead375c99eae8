//! `countersign-hub`: serve the hub, or make an enrollment token. Errors are reported
//! here with anyhow; everything else lives in the library.

mod identity_cmd;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use countersign_hub::config::HubConfig;
use countersign_hub::oidc::SignIn;
use countersign_hub::publish::SigningKey;
use countersign_hub::{api_tokens, auth, db::Db, routes};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "countersign-hub", version, about = "The Countersign hub: audit ingestion from enrolled devices")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub(crate) struct DbArgs {
    /// The hub's config file (hub.toml; docs/hub-config.schema.json). Flags and
    /// environment variables override its keys.
    #[arg(long, env = "COUNTERSIGN_HUB_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL (`postgres://…` or `sqlite://…`). Default: `database` in the config,
    /// else hub.db in the data directory.
    #[arg(long, env = "COUNTERSIGN_HUB_DATABASE")]
    database: Option<String>,
}

impl DbArgs {
    fn config(&self) -> Result<HubConfig> {
        Ok(match &self.config {
            Some(path) => HubConfig::load(path)?,
            None => HubConfig::default(),
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub.
    Serve {
        #[command(flatten)]
        db: DbArgs,
        /// Address to listen on (default: `listen` in the config, else 127.0.0.1:47900).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// SHA-256 (hex) of the break-glass admin token (`admin-token create` makes one):
        /// off unless given, every use raises an alert. Day-to-day access uses API tokens
        /// with a role (`api-token create`).
        #[arg(long, env = "COUNTERSIGN_HUB_ADMIN_TOKEN_SHA256")]
        admin_token_sha256: Option<String>,
        /// The minisign secret key policy bundles are signed with (`countersign policy
        /// keygen` makes one); its passphrase, if any, from COUNTERSIGN_HUB_SIGNING_KEY_PASSPHRASE.
        #[arg(long, env = "COUNTERSIGN_HUB_SIGNING_KEY")]
        signing_key: Option<PathBuf>,
        /// Days a published bundle stays valid (default 30).
        #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..=365))]
        bundle_days: Option<u64>,
        /// Forward ingested records as OTLP logs to this OTLP/HTTP endpoint (…:4318).
        #[arg(long, env = "COUNTERSIGN_HUB_OTLP_ENDPOINT")]
        otlp_endpoint: Option<String>,
        /// Forward ingested records to this Splunk HTTP Event Collector (…:8088).
        #[arg(long, env = "COUNTERSIGN_HUB_SPLUNK_HEC_URL", requires = "splunk_hec_token_file")]
        splunk_hec_url: Option<String>,
        /// A file holding the HEC token (kept out of the command line and the config).
        #[arg(long, env = "COUNTERSIGN_HUB_SPLUNK_HEC_TOKEN_FILE")]
        splunk_hec_token_file: Option<PathBuf>,
        /// The largest audit batch a device may send, in bytes after decompression
        /// (larger ones are answered 413 and nothing of them is stored).
        #[arg(long, env = "COUNTERSIGN_HUB_MAX_INGEST_BYTES",
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(65_536..=1 << 30))]
        max_ingest_bytes: Option<usize>,
    },
    /// Enrollment tokens for devices.
    EnrollmentToken {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The break-glass admin token (off unless the hub is started with its digest).
    AdminToken {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// API tokens for staff and automation, each with one role.
    ApiToken {
        #[command(subcommand)]
        command: ApiTokenCommand,
    },
    /// Enterprise agents: service principals with an owner who answers for them.
    Agent {
        #[command(subcommand)]
        command: identity_cmd::AgentCommand,
    },
    /// Enrolled devices.
    Device {
        #[command(subcommand)]
        command: identity_cmd::DeviceCommand,
    },
}

#[derive(Subcommand)]
enum ApiTokenCommand {
    /// Print a new API token (alone on stdout).
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// viewer, auditor, approver, policy-admin, admin, or scim (the IdP provisioning
        /// people over SCIM).
        #[arg(long)]
        role: countersign_hub::roles::Role,
        /// How long it stays valid (`30d`, `12h`); without it, until revoked.
        #[arg(long, value_parser = api_tokens::parse_lifetime)]
        expires: Option<std::time::Duration>,
        /// What it is for, as listings and the admin log show it.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List the API tokens (never their secrets).
    List {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API token: it stops working on its next request.
    Revoke {
        #[command(flatten)]
        db: DbArgs,
        id: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new single-use enrollment token (alone on stdout).
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// How long it stays valid.
        #[arg(long, default_value_t = 168)]
        hours: u64,
        /// The person whose device enrolls with it: the hub stores the device's records
        /// as this user's, whatever they claim (without it, the first record decides).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Print a new admin token on stdout and, on stderr, the digest to configure.
    Create,
}

fn data_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("COUNTERSIGN_HUB_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("dev", "Countersign", "countersign-hub")
        .map(|d| d.data_dir().to_path_buf())
        .context("no data directory for this user; set COUNTERSIGN_HUB_HOME")
}

pub(crate) async fn open(db: &DbArgs) -> Result<Db> {
    let from_file = db.config()?.database;
    let url = match db.database.clone().or(from_file) {
        Some(url) => url,
        None => {
            let dir = data_dir()?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            format!("sqlite://{}?mode=rwc", dir.join("hub.db").display())
        }
    };
    Ok(Db::connect(&url).await?)
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COUNTERSIGN_HUB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            db,
            listen,
            admin_token_sha256,
            signing_key,
            bundle_days,
            otlp_endpoint,
            splunk_hec_url,
            splunk_hec_token_file,
            max_ingest_bytes,
        } => {
            let file = db.config()?;
            let listen = listen.or(file.listen).unwrap_or(SocketAddr::from(([127, 0, 0, 1], 47900)));
            let admin_token_sha256 = admin_token_sha256.or(file.admin_token_sha256.clone());
            let signing_key = signing_key.or(file.signing_key.clone());
            let bundle_days = bundle_days.or(file.bundle_days).unwrap_or(30);
            let otlp_endpoint = otlp_endpoint.or(file.siem.otlp_endpoint.clone());
            let splunk_hec_url = splunk_hec_url.or(file.siem.splunk_hec_url.clone());
            let splunk_hec_token_file = splunk_hec_token_file.or(file.siem.splunk_hec_token_file.clone());
            let max_ingest_bytes =
                max_ingest_bytes.or(file.max_ingest_bytes).unwrap_or(countersign_hub::gate::DEFAULT_INGEST_CAP);
            let sign_in = match &file.oidc {
                Some(oidc) => {
                    let secret = oidc
                        .client_secret_file
                        .as_ref()
                        .map(|f| {
                            std::fs::read_to_string(f)
                                .map(|s| s.trim().to_string())
                                .with_context(|| format!("reading `oidc.client_secret_file` {}", f.display()))
                        })
                        .transpose()?;
                    Some(SignIn::new(&file, oidc, secret)?)
                }
                None => None,
            };
            let hec = match (splunk_hec_url, splunk_hec_token_file) {
                (Some(url), Some(file)) => {
                    let token = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading the HEC token from {}", file.display()))?;
                    Some((url, token.trim().to_string()))
                }
                _ => None,
            };
            let siem =
                countersign_hub::siem::Siem::start(countersign_hub::siem::SiemConfig { otlp: otlp_endpoint, hec });
            let db = open(&db).await?;
            if admin_token_sha256.is_some() {
                tracing::warn!("the break-glass admin token is configured: every use raises an alert");
            }
            let passphrase = std::env::var("COUNTERSIGN_HUB_SIGNING_KEY_PASSPHRASE").ok();
            let signing_key = signing_key.map(|p| SigningKey::load(&p, passphrase)).transpose()?;
            let hub = Arc::new(routes::Hub {
                db,
                admin_token_sha256: admin_token_sha256.map(|d| d.to_lowercase()),
                signing_key,
                bundle_valid_for: std::time::Duration::from_secs(bundle_days.clamp(1, 365) * 86_400),
                published: Default::default(),
                siem,
                max_ingest_bytes,
                sign_in,
                guesses: Default::default(),
                approvals_changed: Default::default(),
            });
            let listener =
                tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
            eprintln!("Countersign hub on http://{}", listener.local_addr()?);
            // Each peer's address reaches the routes that cap anonymous requests per source.
            axum::serve(listener, routes::router(hub).into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
        Command::EnrollmentToken { command: TokenCommand::Create { db, hours, user } } => {
            let db = open(&db).await?;
            println!("{}", auth::create_enrollment_token(&db, hours, user.as_deref()).await?);
        }
        Command::AdminToken { command: AdminCommand::Create } => {
            let token = auth::new_token("csa_");
            println!("{token}");
            eprintln!(
                "a break-glass token (every use raises an alert): start the hub with --admin-token-sha256 {}",
                auth::digest(&token)
            );
        }
        Command::ApiToken { command } => api_token(command).await?,
        Command::Agent { command } => identity_cmd::run(command).await?,
        Command::Device { command } => identity_cmd::device(command).await?,
    }
    Ok(())
}

/// Who runs the CLI on the hub's host, as the admin log names them.
pub(crate) fn cli_actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into());
    format!("countersign-hub CLI (OS user {user})")
}

async fn api_token(command: ApiTokenCommand) -> Result<()> {
    let cli = countersign_hub::callers::Staff::new(cli_actor(), vec![countersign_hub::roles::Role::Admin]);
    match command {
        ApiTokenCommand::Create { db, role, expires, name } => {
            let db = open(&db).await?;
            let (made, token) = api_tokens::create(&db, role, &name, expires, &cli.actor).await?;
            let expires = made.expires_at.as_deref().unwrap_or("never");
            countersign_hub::callers::log_action_db(
                &db,
                &cli,
                "api-token-create",
                format!("`{}` ({}), role {role}, expires {expires}", made.name, made.id),
            )
            .await?;
            println!("{token}");
            eprintln!("API token `{}` ({}), role {role}, expires {expires}", made.name, made.id);
        }
        ApiTokenCommand::List { db, json } => {
            let tokens = api_tokens::list(&open(&db).await?).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                for t in tokens {
                    let state = match (&t.revoked_at, &t.expires_at) {
                        (Some(at), _) => format!("revoked {at}"),
                        (None, Some(at)) => format!("expires {at}"),
                        (None, None) => "no expiry".into(),
                    };
                    println!("{}  {:<12}  {}  ({state}, made by {})", t.id, t.role.as_str(), t.name, t.created_by);
                }
            }
        }
        ApiTokenCommand::Revoke { db, id } => {
            let db = open(&db).await?;
            let Some(t) = api_tokens::revoke(&db, &id).await? else { anyhow::bail!("no API token `{id}`") };
            countersign_hub::callers::log_action_db(&db, &cli, "api-token-revoke", id.clone()).await?;
            eprintln!("revoked API token `{}` ({id}) at {}", t.name, t.revoked_at.unwrap_or_default());
        }
    }
    Ok(())
}
