//! `countersign clients list | install | uninstall`: the AI clients on this machine, and
//! routing them through Countersign and back. Prints what changed, where the backups
//! are, and which clients must restart to notice.
//!
//! A project folder's servers (`install --project DIR`) were chosen by whoever wrote the
//! project's files, a repository cloned from anywhere: each one's command is printed and
//! nothing of a project is routed until the person agrees, at a prompt on a terminal or
//! with `--yes` (the commands printed first all the same). Off a terminal without
//! `--yes`, nothing is changed.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use countersign_clients::read::Transport;
use countersign_clients::{ClientKind, Env, Route};
use countersign_gateway::policy_layers;
use countersign_local::client_routing::review::{self, ProjectServer};
use countersign_local::client_routing::{self, FileOutcome, Options};
use countersign_local::config_file::{self, Chosen};
use countersign_local::{Config, Home};
// Names, commands and paths in clients' files are anyone's (a cloned repository's
// `.mcp.json`): printed with hidden characters as visible escapes.
use countersign_policy::shown::visible as v;
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Every client's configuration found, and each server: routed (through Countersign),
    /// shadow (straight to the server) or blocked (straight, and not allowed by policy).
    List {
        /// Also look at these project folders (`.mcp.json`, `.cursor/`, `.vscode/`, …).
        #[arg(long = "project", value_name = "DIR")]
        projects: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Route clients' servers through Countersign: their definitions move into
    /// Countersign's config (credentials into the keychain) and each client gets the
    /// stdio shim or the loopback URL in its own syntax. Running it again changes nothing.
    Install {
        /// Clients to route (claude-desktop, claude-code, cursor, vs-code, windsurf, zed,
        /// cline, continue, gemini-cli, codex-cli, goose, lm-studio); default: all found.
        clients: Vec<String>,
        /// Also route these project folders' own files. Their servers are shown and
        /// routed only once you agree; they then serve that project's own entries only.
        #[arg(long = "project", value_name = "DIR")]
        projects: Vec<PathBuf>,
        /// Countersign's config file to add the servers to. Default: COUNTERSIGN_CONFIG,
        /// else the running gateway's, else config.toml in the data directory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Route the project folders' servers as printed without asking (for scripts
        /// that have read them). Without it, off a terminal, nothing is changed.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Put clients' files back as they were before `install` (their servers direct again).
    Uninstall {
        /// Clients to put back; default: every client install changed.
        clients: Vec<String>,
        /// Countersign's config file install added the servers to.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn kinds(names: &[String]) -> Result<Vec<ClientKind>> {
    names
        .iter()
        .map(|n| {
            ClientKind::from_slug(n).with_context(|| {
                let known: Vec<&str> = ClientKind::ALL.iter().map(|k| k.slug()).collect();
                format!("unknown client `{n}`; known: {}", known.join(", "))
            })
        })
        .collect()
}

fn env() -> Result<Env> {
    Env::from_process().context("no home folder (HOME is not set)")
}

/// The config the servers belong in: the one rule every command follows (the one given,
/// COUNTERSIGN_CONFIG, the running gateway's, or the default).
fn config_path(home: &Home, given: Option<PathBuf>) -> Chosen {
    config_file::for_command(home, given)
}

/// Where this user's gateway listens: the running one, else the config's or the default.
fn gateway(home: &Home, config: &std::path::Path) -> SocketAddr {
    home.read_runtime()
        .map(|r| r.listen)
        .unwrap_or_else(|| Config::load(config).unwrap_or_else(|_| Config::empty()).gateway.listen)
}

fn policy(home: &Home, config: &std::path::Path) -> Result<countersign_policy::Policy> {
    let user = if config.exists() { Config::load(config)?.policy } else { Default::default() };
    Ok(policy_layers::compile(&user, home)?.0)
}

pub async fn run(home: &Home, command: ClientsCommand) -> Result<i32> {
    match command {
        ClientsCommand::List { projects, json } => list(home, &projects, json),
        ClientsCommand::Install { clients, projects, config, json, yes } => {
            let clients = kinds(&clients)?;
            let chosen = config_path(home, config);
            let config = &chosen.path;
            let program =
                std::env::current_exe().context("cannot tell where the countersign program is")?.display().to_string();
            let projects = projects
                .iter()
                .map(|p| std::path::absolute(p).with_context(|| format!("{}: not a folder path", p.display())))
                .collect::<Result<Vec<_>>>()?;
            let env = env()?;
            let mut options =
                Options { clients, projects, program, gateway: Some(gateway(home, config)), approved: Vec::new() };
            options.approved = confirm_projects(&env, &options, yes, json)?;
            let policy = policy(home, config)?;
            let lookup = |var: &str| std::env::var(var).ok();
            let outcomes = client_routing::install(home, config, &env, &policy, &options, &lookup).await?;
            crate::control::take_up_config(home, config).await;
            report(&outcomes, json, "routed through Countersign", &chosen)
        }
        ClientsCommand::Uninstall { clients, config, json } => {
            let clients = kinds(&clients)?;
            let chosen = config_path(home, config);
            let outcomes = client_routing::uninstall(home, &chosen.path, &env()?, &clients).await?;
            crate::control::take_up_config(home, &chosen.path).await;
            report(&outcomes, json, "direct again", &chosen)
        }
    }
}

/// Shows what the project folders' servers run and asks before any is routed (see the
/// module's note); returns those agreed to.
fn confirm_projects(env: &Env, options: &Options, yes: bool, json: bool) -> Result<Vec<ProjectServer>> {
    let found = review::project_servers(env, &options.projects, &options.clients, options.gateway);
    if found.is_empty() {
        return Ok(found);
    }
    let mut out: Box<dyn Write> = if json { Box::new(std::io::stderr()) } else { Box::new(std::io::stdout()) };
    writeln!(out, "These servers come from project folders: the project's files, not you, chose what they run.")?;
    let mut project = None;
    for p in &found {
        if project != Some(&p.project) {
            writeln!(out, "Project {}:", review::escaped(&p.project.display().to_string()))?;
            project = Some(&p.project);
        }
        for line in p.describe() {
            writeln!(out, "  {line}")?;
        }
    }
    writeln!(
        out,
        "Once routed, each runs on this computer when that project's own entry asks for it, and serves no other \
         client."
    )?;
    if yes {
        writeln!(out, "--yes: routing the {} server(s) above as shown.", found.len())?;
        return Ok(found);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "{} project server(s) were not routed and nothing was changed: read what they run above, then run \
             this again on a terminal to be asked, or with --yes",
            found.len()
        );
    }
    write!(out, "Route these {} project server(s) through Countersign? [y/N] ", found.len())?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).context("reading the answer")?;
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        bail!("not confirmed: nothing was changed");
    }
    Ok(found)
}

fn report(outcomes: &[FileOutcome], json: bool, done: &str, config: &Chosen) -> Result<i32> {
    let failed = outcomes.iter().any(|o| o.error.is_some());
    if json {
        println!("{}", serde_json::to_string_pretty(outcomes)?);
        return Ok(i32::from(failed));
    }
    let mut changed_any = false;
    for o in outcomes {
        if o.changed.is_empty() && o.skipped.is_empty() && o.error.is_none() {
            continue;
        }
        println!("{} — {}", o.client_name, v(&o.file));
        for m in &o.changed {
            changed_any = true;
            println!("  {:<20} {done} (Countersign server `{}`, {})", v(&m.name), v(&m.server), m.via);
        }
        for s in &o.skipped {
            println!("  {:<20} not changed: {}", v(&s.name), v(&s.reason));
        }
        for r in &o.renamed_secrets {
            println!(
                "  keychain: `{}` is taken (by another reference or an item already there, left as it is); the \
                 credential was stored as `{}`",
                v(&r.taken),
                v(&r.stored_as)
            );
        }
        if let Some(e) = &o.error {
            println!("  not changed: {}", v(e));
        }
        if let Some(b) = &o.backup {
            println!("  backup: {}", v(b));
        }
        for s in &o.sign_in {
            let s = v(s);
            println!(
                "  `{s}` is a remote server: if it asks you to sign in, run `countersign auth login {s}{}`",
                config.flag()
            );
        }
        if let Some(r) = o.restart {
            println!("  restart needed: {r}");
        }
    }
    if !changed_any && !failed {
        println!("nothing to change: every server found is already {done}");
    } else if changed_any {
        println!("Countersign config: {}", config.path.display());
    }
    if failed {
        bail!("some files could not be changed (see above); they were left as they were");
    }
    Ok(0)
}

fn list(home: &Home, projects: &[PathBuf], json: bool) -> Result<i32> {
    let config = config_path(home, None).path;
    let mut reports = countersign_clients::inventory(&env()?, projects, Some(gateway(home, &config)));
    if let Ok(policy) = policy(home, &config) {
        countersign_gateway::client_inventory::mark_blocked(&mut reports, &policy);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(0);
    }
    if reports.is_empty() {
        println!("no AI client configuration found");
    }
    for r in &reports {
        let scope = match &r.scope {
            countersign_clients::Scope::User => String::new(),
            countersign_clients::Scope::Project(p) => format!(" (project {})", p.display()),
        };
        println!("{} — {}{}", r.client_name, v(&r.file), v(&scope));
        if let Some(e) = &r.error {
            println!("  cannot read it: {}", v(e));
        }
        for s in &r.servers {
            let route = match s.route {
                Route::Routed => "routed",
                Route::Shadow => "SHADOW",
                Route::Blocked => "BLOCKED",
            };
            let what = match &s.server.transport {
                Transport::Stdio { command, args } => format!("{command} {}", args.join(" ")),
                Transport::Remote { url } => url.clone(),
            };
            let off = if s.server.enabled { "" } else { " (disabled)" };
            println!("  {route:<7} {:<20} {}{off}", v(&s.server.name), v(&what));
        }
    }
    Ok(0)
}
