//! Reads one client configuration file and lists the MCP servers it configures, in the
//! client's own schema (`command`/`args`, `url`, `serverUrl`, `httpUrl`, Zed's command
//! object, Goose's `cmd`/`uri`, Continue's list). Reading never changes the file; a file
//! that does not parse is an error naming it, not an empty list.

use crate::client::{Format, Location, ServersAt};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid {format}: {message}")]
    Parse { path: PathBuf, format: &'static str, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Transport {
    Stdio { command: String, args: Vec<String> },
    Remote { url: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Server {
    pub name: String,
    #[serde(flatten)]
    pub transport: Transport,
    /// Whether the client has it switched on (`disabled: true`, Goose's `enabled`).
    pub enabled: bool,
    /// For Claude Code's per-project servers kept in `~/.claude.json`: the project.
    #[cfg_attr(feature = "ts", ts(optional))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The environment a stdio server is started with. Never shown or serialised: values
    /// may be credentials.
    #[serde(skip)]
    pub env: BTreeMap<String, String>,
    /// The headers sent to a remote server. Never shown or serialised, like `env`.
    #[serde(skip)]
    pub headers: BTreeMap<String, String>,
    /// The folder a stdio server starts in, when the client sets one.
    #[serde(skip)]
    pub cwd: Option<String>,
}

/// The document as JSON, whatever its format.
pub fn parse(text: &str, format: Format, path: &std::path::Path) -> Result<Value, ReadError> {
    let err = |f: &'static str, message: String| ReadError::Parse { path: path.to_path_buf(), format: f, message };
    match format {
        Format::Json | Format::Jsonc => {
            let options = jsonc_parser::ParseOptions::default();
            jsonc_parser::parse_to_serde_value::<Option<Value>>(text, &options)
                .map(|v| v.unwrap_or(Value::Object(Map::new())))
                .map_err(|e| err(if format == Format::Json { "JSON" } else { "JSON with comments" }, e.to_string()))
        }
        Format::Toml => toml::from_str::<Value>(text).map_err(|e| err("TOML", e.message().to_string())),
        Format::Yaml if text.trim().is_empty() => Ok(Value::Object(Map::new())),
        Format::Yaml => serde_yaml_ng::from_str::<Value>(text).map_err(|e| err("YAML", e.to_string())),
    }
}

/// The servers `location` configures; `None` when the file does not exist.
pub fn read(location: &Location) -> Result<Option<Vec<Server>>, ReadError> {
    let text = match std::fs::read_to_string(&location.path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ReadError::Io { path: location.path.clone(), source }),
    };
    let doc = parse(&text, location.format, &location.path)?;
    Ok(Some(servers_in(&doc, &location.servers_at)))
}

/// The servers in a parsed document.
pub fn servers_in(doc: &Value, at: &ServersAt) -> Vec<Server> {
    let mut out = Vec::new();
    match at {
        ServersAt::Map(key) => from_map(doc.get(*key), None, &mut out),
        ServersAt::ClaudeCodeUser => {
            from_map(doc.get("mcpServers"), None, &mut out);
            if let Some(projects) = doc.get("projects").and_then(Value::as_object) {
                for (dir, project) in projects {
                    from_map(project.get("mcpServers"), Some(dir), &mut out);
                }
            }
        }
        ServersAt::NamedList(key) => {
            for item in doc.get(*key).and_then(Value::as_array).into_iter().flatten() {
                if let Some(name) = item.get("name").and_then(Value::as_str) {
                    if let Some(s) = server(name, item, None) {
                        out.push(s);
                    }
                }
            }
        }
    }
    out
}

fn from_map(map: Option<&Value>, project: Option<&str>, out: &mut Vec<Server>) {
    for (name, entry) in map.and_then(Value::as_object).into_iter().flatten() {
        if let Some(s) = server(name, entry, project) {
            out.push(s);
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn server(name: &str, entry: &Value, project: Option<&str>) -> Option<Server> {
    let text = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_string);
    let transport = if let Some(url) =
        text("url").or_else(|| text("serverUrl")).or_else(|| text("httpUrl")).or_else(|| text("uri"))
    {
        Transport::Remote { url }
    } else if let Some(command) = entry.get("command").or_else(|| entry.get("cmd")) {
        match command {
            Value::String(c) => Transport::Stdio { command: c.clone(), args: strings(entry.get("args")) },
            // Zed's older form: `"command": { "path": "…", "args": […] }`.
            Value::Object(o) => Transport::Stdio {
                command: o.get("path").and_then(Value::as_str)?.to_string(),
                args: strings(o.get("args")),
            },
            _ => return None,
        }
    } else {
        return None;
    };
    let enabled = !entry.get("disabled").and_then(Value::as_bool).unwrap_or(false)
        && entry.get("enabled").and_then(Value::as_bool).unwrap_or(true);
    // Goose keeps the environment in `envs`, Zed's older form inside `command`; Codex's
    // headers are `http_headers`, Continue's under `requestOptions`.
    let nested = |outer: &str, inner: &str| entry.get(outer).and_then(|o| o.get(inner)).cloned();
    let env = [entry.get("env").cloned(), entry.get("envs").cloned(), nested("command", "env")]
        .into_iter()
        .flatten()
        .find(Value::is_object);
    let headers =
        [entry.get("headers").cloned(), entry.get("http_headers").cloned(), nested("requestOptions", "headers")]
            .into_iter()
            .flatten()
            .find(Value::is_object);
    Some(Server {
        name: name.to_string(),
        transport,
        enabled,
        project: project.map(str::to_string),
        env: text_map(env.as_ref()),
        headers: text_map(headers.as_ref()),
        cwd: text("cwd"),
    })
}

/// A map's values as text (numbers and booleans written as JSON would).
fn text_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}
