//! The inventory: every detected client, every server it is configured with, and whether
//! that server runs through Countersign (routed) or around it (shadow).

use crate::client::{locations, shown, ClientKind, Location, Scope};
use crate::env::Env;
use crate::read::{read, ReadError, Server, Transport};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// Through Countersign: the stdio shim, or the loopback endpoint.
    Routed,
    /// Straight to the server, around Countersign.
    Shadow,
    /// Straight to the server, and not on the list of servers managed policy allows.
    Blocked,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ServerReport {
    #[serde(flatten)]
    pub server: Server,
    pub route: Route,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FileReport {
    pub client: ClientKind,
    pub client_name: &'static str,
    /// The file, shown relative to the home folder.
    pub file: String,
    #[serde(flatten)]
    pub scope: Scope,
    pub servers: Vec<ServerReport>,
    /// Why the file could not be read, if it could not.
    #[cfg_attr(feature = "ts", ts(optional))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a server would reach Countersign.
pub fn route_of(server: &Server, gateway: Option<SocketAddr>) -> Route {
    match &server.transport {
        Transport::Stdio { command, args } => {
            let program = command.rsplit(['/', '\\']).next().unwrap_or(command);
            let is_ours = program == "countersign" || program == "countersign.exe";
            if is_ours && args.first().map(String::as_str) == Some("connect") {
                Route::Routed
            } else {
                Route::Shadow
            }
        }
        Transport::Remote { url } => {
            let ours = gateway.is_some_and(|addr| {
                let port = addr.port();
                [
                    format!("http://127.0.0.1:{port}/mcp"),
                    format!("http://localhost:{port}/mcp"),
                    format!("http://[::1]:{port}/mcp"),
                ]
                .iter()
                .any(|prefix| url == prefix || url.starts_with(&format!("{prefix}/")))
            });
            if ours {
                Route::Routed
            } else {
                Route::Shadow
            }
        }
    }
}

/// Marks the shadow servers that `blocked` says managed policy does not allow.
pub fn mark_blocked(reports: &mut [FileReport], blocked: impl Fn(&Server) -> bool) {
    for s in reports.iter_mut().flat_map(|r| r.servers.iter_mut()) {
        if s.route == Route::Shadow && blocked(&s.server) {
            s.route = Route::Blocked;
        }
    }
}

/// Every configuration file that exists, with its servers and their routes.
pub fn inventory(env: &Env, projects: &[PathBuf], gateway: Option<SocketAddr>) -> Vec<FileReport> {
    locations(env, projects).iter().filter_map(|l| report(env, l, gateway)).collect()
}

fn report(env: &Env, location: &Location, gateway: Option<SocketAddr>) -> Option<FileReport> {
    let (servers, error) = match read(location) {
        Ok(None) => return None,
        Ok(Some(servers)) => (servers, None),
        Err(e @ ReadError::Parse { .. }) | Err(e @ ReadError::Io { .. }) => (Vec::new(), Some(e.to_string())),
    };
    Some(FileReport {
        client: location.client,
        client_name: location.client.name(),
        file: shown(&location.path, &env.home),
        scope: location.scope.clone(),
        servers: servers.into_iter().map(|s| ServerReport { route: route_of(&s, gateway), server: s }).collect(),
        error,
    })
}
