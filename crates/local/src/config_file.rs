//! Which config file a command uses: one rule for every command, so what one command
//! writes (`clients install` moving a server, `secret import`) is what the next reads
//! (`secret list`, `auth login`, `policy show`).
//!
//! The rule: the file given on the command line (`--config`), else `COUNTERSIGN_CONFIG`,
//! else the config of the gateway running on this data folder (its runtime file), else
//! `config.toml` in the data folder. Starting a gateway (`serve`, the app) skips the
//! running gateway's: it chooses the config rather than follows one.
//!
//! It only names a file; it never reads or creates it.

use crate::home::Home;
use std::path::{Path, PathBuf};

/// The variable naming the config file, for every command.
pub const VAR: &str = "COUNTERSIGN_CONFIG";

/// Where the chosen file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--config` on the command line.
    Given,
    /// `COUNTERSIGN_CONFIG`.
    Environment,
    /// The running gateway's, from its runtime file.
    RunningGateway,
    /// `config.toml` in the data folder (it may not exist).
    Default,
}

/// A config file and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub path: PathBuf,
    pub source: Source,
}

impl Chosen {
    /// Whether the person named this file (`--config`, `COUNTERSIGN_CONFIG`): a missing
    /// one is then an error, where a missing default is an empty config.
    pub fn explicit(&self) -> bool {
        matches!(self.source, Source::Given | Source::Environment)
    }

    /// The `--config PATH` a printed command needs to reach this same file, when the
    /// rule would not find it alone (it was given on the command line).
    pub fn flag(&self) -> String {
        match self.source {
            Source::Given => format!(" --config {}", self.path.display()),
            _ => String::new(),
        }
    }
}

/// The rule, from its inputs.
pub fn choose(given: Option<PathBuf>, env: Option<PathBuf>, running: Option<PathBuf>, data_dir: &Path) -> Chosen {
    let pick = |path, source| Chosen { path, source };
    given
        .map(|p| pick(p, Source::Given))
        .or_else(|| env.map(|p| pick(p, Source::Environment)))
        .or_else(|| running.map(|p| pick(p, Source::RunningGateway)))
        .unwrap_or_else(|| pick(data_dir.join("config.toml"), Source::Default))
}

fn from_env() -> Option<PathBuf> {
    std::env::var_os(VAR).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// The config file a command uses (see the module's rule).
pub fn for_command(home: &Home, given: Option<PathBuf>) -> Chosen {
    choose(given, from_env(), home.read_runtime().and_then(|r| r.config), home.dir())
}

/// The config file a gateway starts with: the rule without the running gateway's.
pub fn to_start(home: &Home, given: Option<PathBuf>) -> Chosen {
    choose(given, from_env(), None, home.dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_given_then_environment_then_running_gateway_then_default() {
        let data = Path::new("/data");
        let p = |s: &str| Some(PathBuf::from(s));
        let c = choose(p("/a.toml"), p("/env.toml"), p("/run.toml"), data);
        assert_eq!((c.path.to_str(), c.source, c.flag()), (Some("/a.toml"), Source::Given, " --config /a.toml".into()));
        let c = choose(None, p("/env.toml"), p("/run.toml"), data);
        assert_eq!((c.path.to_str(), c.source, c.flag()), (Some("/env.toml"), Source::Environment, String::new()));
        let c = choose(None, None, p("/run.toml"), data);
        assert_eq!((c.path.to_str(), c.source), (Some("/run.toml"), Source::RunningGateway));
        let c = choose(None, None, None, data);
        assert_eq!((c.path.to_str(), c.source), (Some("/data/config.toml"), Source::Default));
    }

    #[test]
    fn commands_follow_the_running_gateway_and_a_start_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().to_path_buf()).unwrap();
        let running = dir.path().join("elsewhere.toml");
        let info = crate::home::RuntimeInfo {
            pid: 1,
            listen: "127.0.0.1:47800".parse().unwrap(),
            config: Some(running.clone()),
        };
        home.write_runtime(&info).unwrap();
        if from_env().is_none() {
            assert_eq!(for_command(&home, None), Chosen { path: running, source: Source::RunningGateway });
            assert_eq!(to_start(&home, None).path, dir.path().join("config.toml"));
        }
        let given = dir.path().join("given.toml");
        assert_eq!(for_command(&home, Some(given.clone())).path, given);
    }
}
