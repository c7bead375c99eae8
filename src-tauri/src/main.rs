//! The desktop app's entry point: logging, the data directory and the config, then the
//! app itself ([`countersign_app::run_app`]). Configuration: `COUNTERSIGN_CONFIG` or
//! `config.toml` in the data directory.

use countersign_app::{run_app, Launch};
use countersign_local::{Config, Home};

fn config(home: &Home) -> anyhow::Result<Config> {
    match std::env::var_os("COUNTERSIGN_CONFIG").map(std::path::PathBuf::from) {
        Some(p) => Ok(Config::load(&p)?),
        None => Ok(Config::load_or_empty(&home.dir().join("config.toml"))?),
    }
}

fn logging() {
    let filter = std::env::var("COUNTERSIGN_LOG").unwrap_or_else(|_| "info".into());
    let mut filter = tracing_subscriber::EnvFilter::new(filter);
    for directive in countersign_vault::LOG_GUARDS {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn main() -> anyhow::Result<()> {
    logging();
    let home = Home::resolve().map_err(|e| anyhow::anyhow!("data directory: {e}"))?;
    let config = config(&home)?;
    run_app(tauri::Builder::default(), Launch { home, config, desktop: true })?;
    Ok(())
}
