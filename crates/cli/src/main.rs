//! The `countersign` command: the headless gateway (`serve`), the stdio shim (`connect`)
//! and the admin commands. A thin edge over the library crates: parse arguments, call
//! the library, print the result. Errors are reported with anyhow, here only.

mod audit_cmd;
mod clients_cmd;
mod control;
mod enroll_cmd;
mod policy_cmd;
mod vault_cmd;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use countersign_local::{Config, Home};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "countersign", version, about = "Govern what AI assistants do through MCP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ShimTransport {
    Auto,
    Socket,
    Http,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway headless on 127.0.0.1.
    Serve {
        /// Configuration file (TOML). Default: COUNTERSIGN_CONFIG, else config.toml in the
        /// data directory, if present.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Relay stdio to the running gateway's /mcp/<server> (what a stdio-only client launches).
    Connect {
        server: String,
        /// Countersign's data folder (where the running gateway is found). Default:
        /// COUNTERSIGN_HOME, else the per-user data directory.
        #[arg(long, value_name = "DIR")]
        home: Option<PathBuf>,
        /// How to reach the gateway: its shim socket when it answers there, else HTTP with
        /// the shim's token from the keychain (auto); the socket only; HTTP only.
        #[arg(long, value_enum, default_value_t = ShimTransport::Auto)]
        transport: ShimTransport,
    },
    /// Client tokens for the loopback endpoint.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit journal.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Is the gateway up, which servers, which sessions, which approvals wait.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending call (its id is shown by `countersign status`).
    Approve {
        id: String,
        /// How long the approval lasts: once (default), session, 15m, 1h, today.
        #[arg(long = "for", value_name = "LENGTH")]
        length: Option<String>,
        /// Limit the grant to arguments matching a condition, e.g. 'path=/work/**'.
        #[arg(long = "where", value_name = "CONDITION", requires = "length")]
        condition: Option<String>,
        /// Release this many of the identical calls waiting on this prompt (the count
        /// `countersign status` shows), not just one; calls that join later are not released.
        #[arg(long, value_name = "N")]
        all: Option<usize>,
        /// Grant what the prompt offers as "Allow similar" (shown by `countersign status`:
        /// e.g. the server's writes under the file's project, for 1 hour).
        #[arg(long, conflicts_with_all = ["length", "condition"])]
        similar: bool,
    },
    /// Deny a pending call (and every identical call waiting with it).
    Deny { id: String },
    /// The kill switch: refuse every tool call until `countersign resume` (audited).
    Pause,
    /// Let tool calls through again after `countersign pause` (audited).
    Resume,
    /// The effective policy, and why a tool call would be allowed, asked or denied.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Tools blocked because their definition changed or looks suspicious, and accepting them.
    Pins {
        #[command(subcommand)]
        command: Option<PinsCommand>,
        #[arg(long)]
        json: bool,
    },
    /// Grants left by approvals longer than once.
    Grants {
        #[command(subcommand)]
        command: Option<GrantsCommand>,
        #[arg(long)]
        json: bool,
    },
    /// Secrets in the OS keychain that the config refers to by name.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Sign-ins (OAuth) to remote servers.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// AI clients on this machine and the MCP servers they use, through Countersign or not.
    Clients {
        #[command(subcommand)]
        command: clients_cmd::ClientsCommand,
    },
    /// Enroll this device with a Countersign hub (the credential goes to the keychain).
    ///
    /// Without a token you sign in with your company's identity provider and the device is
    /// bound to you (on a device enrolled by token, this binds it to you). A browser opens
    /// to the hub's page; with --no-browser, or with no display, the address and a code to
    /// type there are printed instead (RFC 8628's device authorization grant).
    Enroll {
        /// The hub's URL, such as https://hub.example.com
        hub_url: String,
        /// A single-use enrollment token IT gave you (an MDM roll-out); the device is then
        /// yours only once you sign in (`countersign enroll HUB_URL` again).
        token: Option<String>,
        /// The name this device shows under at the hub (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Print the address and code instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
        /// Enroll this host as the enterprise agent NAME (with the token its admin made by
        /// `countersign-hub agent create`): records name `agent:NAME` and its owner, and
        /// what policy would ask a person is denied (no one is at an agent's keyboard).
        #[arg(long, value_name = "NAME", requires = "token")]
        agent: Option<String>,
    },
    /// Who this device's records name: the person the hub verified (or `unverified: <OS
    /// account>`), and the device id.
    Whoami {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send the audit journal to the hub.
    Sync {
        /// Send everything pending now and print how many records the hub acknowledged.
        #[arg(long)]
        now: bool,
        /// Countersign's config file. Default: COUNTERSIGN_CONFIG, else the running gateway's,
        /// else config.toml in the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and print what it sets.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the effective policy and which layer set each value.
    Show {
        /// Countersign's config file. Default: COUNTERSIGN_CONFIG, else the running gateway's,
        /// else config.toml in the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print the decision for `mcp__server__tool` (its first word) and why.
    Explain {
        name: String,
        /// The call's arguments, as a JSON object.
        #[arg(long)]
        args: Option<String>,
        /// The client (token name or client name) making the call.
        #[arg(long)]
        client: Option<String>,
        /// Countersign's config file. Default: COUNTERSIGN_CONFIG, else the running gateway's,
        /// else config.toml in the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Make the running gateway read every policy layer again now.
    Reload,
    /// Make a key pair for signing policy bundles (for IT, not for laptops).
    Keygen { dir: PathBuf },
    /// Sign a policy bundle with a key from `policy keygen`.
    Sign {
        #[arg(long)]
        key: PathBuf,
        bundle: PathBuf,
    },
}

#[derive(Subcommand)]
enum PinsCommand {
    /// Accept a server's tools as they are now (all of them, or the ones named).
    Accept { server: String, tools: Vec<String> },
}

#[derive(Subcommand)]
enum GrantsCommand {
    /// Revoke a grant.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token for an HTTP client; it is printed once, alone on stdout.
    Create { name: String },
    /// Revoke a token by name.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print every record.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
    },
    /// Check the journal's hash chain, its outcomes and the hub's signed checkpoints;
    /// names the first record that was changed, inserted or removed. When enrolled, also
    /// compares the journal with the newest checkpoint the hub holds.
    Verify {
        #[arg(long)]
        json: bool,
        /// Do not ask the hub for its checkpoint.
        #[arg(long)]
        offline: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Jsonl,
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Store a secret: the value is read from a hidden prompt, or from stdin when it is not
    /// a terminal (never from the command line).
    Set { name: String },
    /// Secret names, whether each is stored, and where the config uses it (never values).
    List {
        /// Countersign's config file. Default: COUNTERSIGN_CONFIG, else the running gateway's,
        /// else config.toml in the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret from the keychain.
    Rm { name: String },
    /// Move plaintext secrets found in the config into the keychain, leaving references.
    Import {
        /// Countersign's config file. Default: COUNTERSIGN_CONFIG, else the running gateway's,
        /// else config.toml in the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Move every one found without asking.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Sign in to a remote server (OAuth in the browser; tokens go to the keychain).
    Login {
        server: String,
        /// Countersign's config file. Default: COUNTERSIGN_CONFIG, else the running gateway's,
        /// else config.toml in the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the address to open instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Sign out: revoke the tokens and remove them from the keychain.
    Logout { server: String },
    /// The state of each remote server's credentials.
    Status {
        /// Countersign's config file. Default: COUNTERSIGN_CONFIG, else the running gateway's,
        /// else config.toml in the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let quiet = matches!(cli.command, Command::Connect { .. });
    init_logging(quiet);
    let home = match &cli.command {
        Command::Connect { home: Some(dir), .. } => Home::at(dir.clone()),
        _ => Home::resolve(),
    };
    let home = match home {
        Ok(home) => home,
        Err(e) => {
            eprintln!("countersign: data directory: {e}");
            std::process::exit(1);
        }
    };
    if matches!(cli.command, Command::Connect { .. }) {
        // A client may start the shim without the session bus (hence the keychain that
        // holds its token): take the running gateway's. It sets an environment variable,
        // so it runs here, before the runtime starts any thread.
        countersign_local::session_bus::adopt(home.recorded_session_bus().as_deref());
    }
    let runtime = match runtime_builder().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("countersign: cannot start: {e}");
            std::process::exit(1);
        }
    };
    match runtime.block_on(run(home, cli.command)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("countersign: {e:#}");
            std::process::exit(1);
        }
    }
}

fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("COUNTERSIGN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    for directive in countersign_vault::LOG_GUARDS {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

async fn run(home: Home, command: Command) -> Result<i32> {
    match command {
        Command::Serve { config } => serve(home, config).await,
        Command::Connect { server, transport, .. } => {
            use countersign_gateway::shim::Transport;
            let limits = countersign_local::config::Limits::default();
            let transport = match transport {
                ShimTransport::Auto => Transport::Auto,
                ShimTransport::Socket => Transport::Socket,
                ShimTransport::Http => Transport::Http,
            };
            countersign_gateway::shim::run(&home, &server, limits.max_line_bytes, transport).await?;
            Ok(0)
        }
        Command::Token { command: TokenCommand::Create { name } } => {
            let token = countersign_local::tokens::TokenStore::create(&home, &name)?;
            println!("{token}");
            Ok(0)
        }
        Command::Token { command: TokenCommand::Revoke { name } } => {
            if countersign_local::tokens::TokenStore::revoke(&home, &name)? {
                eprintln!("revoked `{name}`");
                Ok(0)
            } else {
                bail!("no token named `{name}`")
            }
        }
        Command::Audit { command: AuditCommand::Export { format: Format::Jsonl } } => {
            let path = home.journal_path();
            if !path.exists() {
                bail!("no audit journal at {} yet", path.display());
            }
            let reader = countersign_audit::Journal::open_read_only(&path).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            reader.export_jsonl(&mut out).await?;
            std::io::Write::flush(&mut out)?;
            Ok(0)
        }
        Command::Audit { command: AuditCommand::Verify { json, offline } } => {
            audit_cmd::verify(&home, json, offline).await
        }
        Command::Status { json } => control::status(&home, json).await,
        Command::Approve { id, length, condition, all, similar } => {
            control::answer(&home, &id, "approve", length.as_deref(), condition.as_deref(), all, similar).await
        }
        Command::Deny { id } => control::answer(&home, &id, "deny", None, None, None, false).await,
        Command::Pause => control::set_paused(&home, true).await,
        Command::Resume => control::set_paused(&home, false).await,
        Command::Policy { command: PolicyCommand::Show { config, json } } => policy_cmd::show(&home, config, json),
        Command::Policy { command: PolicyCommand::Explain { name, args, client, config, json } } => {
            policy_cmd::explain(&home, policy_cmd::Explain { name, args, client, config, json })
        }
        Command::Policy { command: PolicyCommand::Reload } => control::reload(&home).await,
        Command::Policy { command: PolicyCommand::Keygen { dir } } => policy_cmd::keygen(&dir),
        Command::Policy { command: PolicyCommand::Sign { key, bundle } } => policy_cmd::sign(&key, &bundle),
        Command::Pins { command: None, json } => control::pins(&home, json).await,
        Command::Pins { command: Some(PinsCommand::Accept { server, tools }), .. } => {
            control::accept_pins(&home, &server, &tools).await
        }
        Command::Grants { command: None, json } => control::grants(&home, json).await,
        Command::Grants { command: Some(GrantsCommand::Revoke { id }), .. } => control::revoke_grant(&home, &id).await,
        Command::Secret { command: SecretCommand::Set { name } } => vault_cmd::set(&name).await,
        Command::Secret { command: SecretCommand::Rm { name } } => vault_cmd::remove(&name).await,
        Command::Secret { command: SecretCommand::List { config, json } } => vault_cmd::list(&home, config, json).await,
        Command::Secret { command: SecretCommand::Import { config, yes } } => {
            vault_cmd::import(&home, config, yes).await
        }
        Command::Auth { command: AuthCommand::Login { server, config, no_browser } } => {
            vault_cmd::login(&home, config, &server, no_browser).await
        }
        Command::Auth { command: AuthCommand::Logout { server } } => vault_cmd::logout(&server).await,
        Command::Auth { command: AuthCommand::Status { config, json } } => vault_cmd::status(&home, config, json).await,
        Command::Clients { command } => clients_cmd::run(&home, command).await,
        Command::Enroll { hub_url, token, name, no_browser, agent } => {
            let name = name.unwrap_or_else(host_name);
            match token {
                Some(token) => enroll_cmd::by_token(&home, &hub_url, &token, &name, agent.as_deref()).await,
                None => enroll_cmd::by_sign_in(&home, &hub_url, &name, no_browser).await,
            }
        }
        Command::Whoami { json } => enroll_cmd::whoami(&home, json).await,
        Command::Sync { now, config } => {
            if !now {
                bail!("the gateway syncs on its own while it runs; `countersign sync --now` sends what is pending now");
            }
            let chosen = countersign_local::config_file::for_command(&home, config);
            let settings = if chosen.explicit() || chosen.path.exists() {
                Config::load(&chosen.path)?.sync
            } else {
                Default::default()
            };
            if !home.journal_path().exists() {
                println!("0");
                return Ok(0);
            }
            let report = countersign_sync::hub_sync::sync_once(&home, settings.batch_size).await?;
            println!("{}", report.acknowledged_records);
            eprintln!(
                "{} record(s) and {} outcome(s) acknowledged by the hub; {} pending",
                report.acknowledged_records, report.acknowledged_outcomes, report.pending_records
            );
            Ok(0)
        }
        Command::Check { config } => {
            let c = Config::load(&config)?;
            println!(
                "{}: ok; listen {}; {} server(s): {}",
                config.display(),
                c.gateway.listen,
                c.servers.len(),
                c.servers.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            Ok(0)
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this device".into())
}

async fn serve(home: Home, config: Option<PathBuf>) -> Result<i32> {
    let chosen = countersign_local::config_file::to_start(&home, config);
    let config = if chosen.explicit() { Config::load(&chosen.path)? } else { Config::load_or_empty(&chosen.path)? };
    let running = countersign_gateway::start(config, home.clone()).await?;
    let url = format!("http://{}/mcp", running.listen);
    eprintln!("Countersign gateway on {url} (data: {})", home.dir().display());
    for name in running.gateway().server_names() {
        eprintln!("  {name:<12} {url}/{name}   stdio: countersign connect {name}");
    }
    running.until(shutdown_signal()).await?;
    eprintln!("Countersign gateway stopped");
    Ok(0)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The gateway's work per call is small and mostly waiting on I/O; on one thread every
/// hand-off inside it is a local task switch instead of a cross-thread wake-up.
/// `COUNTERSIGN_THREADS=N` (N > 1) asks for a multi-threaded runtime instead.
fn runtime_builder() -> tokio::runtime::Builder {
    match std::env::var("COUNTERSIGN_THREADS").ok().and_then(|v| v.parse::<usize>().ok()) {
        Some(n) if n > 1 => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    }
}
