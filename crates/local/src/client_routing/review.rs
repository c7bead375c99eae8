//! What a project's own files (`.mcp.json`, `.cursor/mcp.json`… in a folder given with
//! `clients install --project`) would have Countersign start, for the person to read
//! before anything of a project is routed. A repository someone cloned chooses these
//! commands, so install routes a project's server only when the person was shown exactly
//! this definition and agreed ([`super::Options::approved`]); one changed since is left
//! as it is.
//!
//! Every word shown is escaped (anything but printable ASCII as `\u{…}`), so a name or
//! argument cannot draw lines or hide text on the terminal. A value whose name marks it
//! a credential is never shown: it goes to the keychain.

use countersign_clients::client::{locations, Location, Scope};
use countersign_clients::inventory::route_of;
use countersign_clients::read::{Server, Transport};
use countersign_clients::{rewrite, ClientKind, Env, Route};
use countersign_vault::plaintext;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One server a project's file configures, as the person must see it to agree to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectServer {
    /// The project folder.
    pub project: PathBuf,
    pub client: ClientKind,
    /// The project's file that names it.
    pub file: PathBuf,
    /// Its name in that file.
    pub name: String,
    /// What it runs, or the address it reaches.
    #[serde(flatten)]
    pub transport: Transport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The environment it would start with, credentials' values hidden.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// The headers it would send, credentials' values hidden.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// The values themselves, compared at install (never shown or serialised).
    #[serde(skip)]
    values: (BTreeMap<String, String>, BTreeMap<String, String>),
}

impl ProjectServer {
    /// The review of `server` from `location`; `None` for a user's own file.
    pub fn of(location: &Location, server: &Server) -> Option<Self> {
        let Scope::Project(project) = &location.scope else { return None };
        Some(ProjectServer {
            project: project.clone(),
            client: location.client,
            file: location.path.clone(),
            name: server.name.clone(),
            transport: server.transport.clone(),
            cwd: server.cwd.clone(),
            environment: server.env.iter().map(|(k, v)| setting(k, v)).collect(),
            headers: server.headers.iter().map(|(k, v)| setting(k, v)).collect(),
            values: (server.env.clone(), server.headers.clone()),
        })
    }

    /// The lines a person reads before agreeing: its name, the client and file, what it
    /// runs (or reaches), where, and with which environment.
    pub fn describe(&self) -> Vec<String> {
        let file = self.file.strip_prefix(&self.project).unwrap_or(&self.file);
        let mut lines = vec![format!(
            "{} (from {}, {})",
            escaped(&self.name),
            self.client.name(),
            escaped(&file.display().to_string())
        )];
        match &self.transport {
            Transport::Stdio { command, args } => {
                let words: Vec<String> = std::iter::once(command).chain(args).map(|w| escaped(w)).collect();
                lines.push(format!("    runs:        {}", words.join(" ")));
            }
            Transport::Remote { url } => lines.push(format!("    reaches:     {}", escaped(url))),
        }
        if let Some(cwd) = &self.cwd {
            lines.push(format!("    in folder:   {}", escaped(cwd)));
        }
        if !self.environment.is_empty() {
            lines.push(format!("    environment: {}", self.environment.join(" ")));
        }
        if !self.headers.is_empty() {
            lines.push(format!("    headers:     {}", self.headers.join(" ")));
        }
        lines
    }
}

/// `KEY=value` as shown: a credential's value hidden, everything escaped. A value that
/// reads the environment (`$GITHUB_TOKEN`) is shown as written, whatever its name: it
/// says which of the person's own variables the project's server would be given.
fn setting(key: &str, value: &str) -> String {
    if plaintext::names_secret(key) && !value.contains('$') {
        format!("{}=(hidden: a credential, it goes to the keychain)", escaped(key))
    } else {
        format!("{}={}", escaped(key), escaped(value))
    }
}

/// A word as the terminal shows it: printable ASCII as it is (quoted when it holds a
/// space, a quote or a backslash, or is empty), anything else as `\u{…}`, so nothing in
/// it can move the cursor, draw a line, reorder text or hide.
pub fn escaped(word: &str) -> String {
    let bare = !word.is_empty() && word.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\'));
    if bare {
        return word.to_string();
    }
    let mut out = String::from("\"");
    for c in word.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c == ' ' || c.is_ascii_graphic() => out.push(c),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// The shadow servers in the chosen clients' files of `projects`: what install would
/// route from them, for the person to confirm first. A file that cannot be read is left
/// to install to report.
pub fn project_servers(
    env: &Env,
    projects: &[PathBuf],
    clients: &[ClientKind],
    gateway: Option<std::net::SocketAddr>,
) -> Vec<ProjectServer> {
    let mut out = Vec::new();
    for location in locations(env, projects) {
        if !matches!(location.scope, Scope::Project(_)) || !(clients.is_empty() || clients.contains(&location.client)) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&location.path) else { continue };
        let Ok(servers) = rewrite::servers(&location, &text) else { continue };
        for server in servers.iter().filter(|s| route_of(s, gateway) == Route::Shadow) {
            out.extend(ProjectServer::of(&location, server));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_clients::Os;

    #[test]
    fn what_a_project_would_run_is_shown_inert_and_without_credentials() {
        assert_eq!(escaped("/usr/bin/python3"), "/usr/bin/python3");
        assert_eq!(escaped("a b"), "\"a b\"");
        assert_eq!(escaped(""), "\"\"");
        assert_eq!(escaped("ok\n\u{1b}[2Jsafe\u{202e}"), "\"ok\\u{a}\\u{1b}[2Jsafe\\u{202e}\"");
        assert_eq!(escaped("say \"hi\""), "\"say \\\"hi\\\"\"");

        let env = Env::for_home(Os::Linux, PathBuf::from("/home/ana"), None, None);
        let project = PathBuf::from("/home/ana/src/repo");
        let location = locations(&env, std::slice::from_ref(&project))
            .into_iter()
            .find(|l| l.path == project.join(".mcp.json"))
            .unwrap();
        let server = Server {
            name: "helper\u{200b}".into(),
            transport: Transport::Stdio { command: "sh".into(), args: vec!["-c".into(), "touch /tmp/x".into()] },
            enabled: true,
            project: None,
            env: BTreeMap::from([
                ("LD_PRELOAD".to_string(), "./evil.so".to_string()),
                ("API_KEY".to_string(), "sk-project-0123456789".to_string()),
                ("UPLOAD_TOKEN".to_string(), "${GITHUB_TOKEN}".to_string()),
            ]),
            headers: BTreeMap::new(),
            cwd: Some("./tools".into()),
        };
        let review = ProjectServer::of(&location, &server).unwrap();
        let text = review.describe().join("\n");
        assert_eq!(
            text,
            "\"helper\\u{200b}\" (from Claude Code, .mcp.json)\n    runs:        sh -c \"touch /tmp/x\"\n    \
             in folder:   ./tools\n    environment: API_KEY=(hidden: a credential, it goes to the keychain) \
             LD_PRELOAD=./evil.so UPLOAD_TOKEN=${GITHUB_TOKEN}"
        );
        assert!(!serde_json::to_string(&review).unwrap().contains("sk-project"), "no credential in JSON either");

        // Another value is another definition: what the person agreed to no longer matches.
        let mut changed = server.clone();
        changed.env.insert("API_KEY".into(), "sk-project-other".into());
        assert_ne!(ProjectServer::of(&location, &changed).unwrap(), review);
        let user = locations(&env, &[]).into_iter().next().unwrap();
        assert!(ProjectServer::of(&user, &server).is_none(), "a user's own file needs no review");
    }
}
