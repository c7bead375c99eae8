//! The aggregate endpoint `/mcp`: every configured server behind one session. Tools,
//! prompts, resources and resource templates are listed with names namespaced
//! `server__name`, and a call is routed by that prefix with the original name restored.
//! A server that fails to start is left out (and said so) rather than failing the rest.

use super::{Reply, Session};
use crate::message::{self, code, Envelope};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const SEPARATOR: &str = "__";

/// How long an aggregate listing is kept at most, even from servers that never say their
/// list changed.
const LIST_MAX_AGE: Duration = Duration::from_secs(30);

/// Splits `server__name` into its parts.
pub fn split_name(name: &str) -> Option<(&str, &str)> {
    name.split_once(SEPARATOR).filter(|(s, n)| !s.is_empty() && !n.is_empty())
}

impl Session {
    /// Starts every upstream with the client's `initialize` and answers with the union of
    /// their capabilities.
    pub async fn aggregate_initialize(self: &Arc<Self>, id: Option<&serde_json::value::RawValue>) -> String {
        let servers: Vec<String> = self.servers().cloned().collect();
        let starts = futures::future::join_all(servers.iter().map(|s| async move { (s, self.link(s).await) })).await;
        let mut capabilities = Map::new();
        let mut versions = Vec::new();
        let mut up = Vec::new();
        let mut down = Vec::new();
        for (server, started) in starts {
            match started {
                Ok(_) => {
                    up.push(server.clone());
                    if let Some(init) = self.state().server_init.get(server.as_str()) {
                        if let Some(v) = init.get("protocolVersion").and_then(Value::as_str) {
                            versions.push(v.to_string());
                        }
                        if let Some(caps) = init.get("capabilities").and_then(Value::as_object) {
                            for (k, v) in caps {
                                if matches!(k.as_str(), "tools" | "prompts" | "resources" | "logging" | "completions") {
                                    capabilities.entry(k.clone()).or_insert_with(|| v.clone());
                                }
                            }
                        }
                    }
                }
                Err(why) => {
                    tracing::warn!(server = %server, "left out of the aggregate session: {why}");
                    down.push(server.clone());
                }
            }
        }
        for cap in ["tools", "prompts", "resources"] {
            if let Some(Value::Object(c)) = capabilities.get_mut(cap) {
                c.insert("listChanged".into(), Value::Bool(true));
            }
        }
        let requested = self.protocol_version();
        let version = match requested {
            Some(r) if versions.iter().all(|v| *v == r) => r,
            _ => versions.first().cloned().unwrap_or_else(|| "2025-06-18".into()),
        };
        let mut instructions = format!(
            "Countersign gateway for: {}. Names are `server__name`.",
            if up.is_empty() { "no servers".to_string() } else { up.join(", ") }
        );
        if !down.is_empty() {
            instructions.push_str(&format!(" Not running: {}.", down.join(", ")));
        }
        let result = json!({
            "protocolVersion": version,
            "capabilities": capabilities,
            "serverInfo": {"name": "countersign", "version": env!("CARGO_PKG_VERSION")},
            "instructions": instructions,
        });
        message::result_response(id, &result)
    }

    pub(super) async fn aggregate_request(self: &Arc<Self>, mut env: Envelope, reply: Reply) {
        let id = env.id().map(|r| r.to_owned());
        let method = env.method().unwrap_or_default().to_string();
        let list = |key: &'static str| (method.clone(), key);
        match method.as_str() {
            "ping" => self.answer(reply, message::result_response(id.as_deref(), &json!({}))),
            "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
                let (method, key) = list(match method.as_str() {
                    "tools/list" => "tools",
                    "prompts/list" => "prompts",
                    "resources/list" => "resources",
                    _ => "resourceTemplates",
                });
                let items = self.list_all(&method, key).await;
                self.answer(reply, message::result_with_raw_member(id.as_deref(), key, &items));
            }
            "prompts/get" => {
                let Ok(mut params) = env.params() else {
                    return self
                        .answer(reply, message::error_response(id.as_deref(), code::INVALID_PARAMS, "bad params"));
                };
                let name = params.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                match split_name(&name).filter(|(s, _)| self.links.contains_key(*s)) {
                    Some((server, original)) => {
                        params["name"] = Value::String(original.to_string());
                        env.set_params(&params);
                        let server = server.to_string();
                        self.forward(&server, env, reply, None).await;
                    }
                    None => self.answer(
                        reply,
                        message::error_response(
                            id.as_deref(),
                            code::INVALID_PARAMS,
                            &format!("unknown prompt `{name}`"),
                        ),
                    ),
                }
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let uri = env.params().ok().and_then(|p| p.get("uri").and_then(Value::as_str).map(str::to_string));
                let owner = uri.as_ref().and_then(|u| self.state().resource_owner.get(u).cloned());
                match owner {
                    Some(server) => self.forward(&server, env, reply, None).await,
                    None => self.answer(
                        reply,
                        message::error_response(
                            id.as_deref(),
                            code::INVALID_PARAMS,
                            "unknown resource: list resources first, or use /mcp/<server>",
                        ),
                    ),
                }
            }
            "logging/setLevel" => {
                let servers: Vec<String> = self.servers().cloned().collect();
                let params = env.params().unwrap_or(Value::Null);
                for server in servers {
                    if let Ok(link) = self.link(&server).await {
                        let _ = self.internal_request(&server, &link, "logging/setLevel", params.clone()).await;
                    }
                }
                self.answer(reply, message::result_response(id.as_deref(), &json!({})));
            }
            _ => self.answer(
                reply,
                message::error_response(
                    id.as_deref(),
                    code::METHOD_NOT_FOUND,
                    &format!("`{method}` is not available on the aggregate endpoint /mcp; use /mcp/<server>"),
                ),
            ),
        }
    }

    /// Lists `key` items from every server (following cursors), names namespaced, as a
    /// JSON array. Kept for the session, as clients keep a listing, until a server says
    /// its list changed, an upstream (re)starts, or `LIST_MAX_AGE` passes; so listing
    /// 100 servers costs about what listing one does.
    async fn list_all(&self, method: &str, key: &str) -> Arc<str> {
        if let Some(kept) = self.state().listings.get(method) {
            if kept.at.elapsed() < LIST_MAX_AGE {
                return kept.json.clone();
            }
        }
        let generation = self.state().listing_generation;
        let items = self.list_all_afresh(method, key).await;
        let json: Arc<str> = Value::Array(items).to_string().into();
        let mut st = self.state();
        // A change announced while listing makes this listing stale at once.
        if st.listing_generation == generation {
            st.listings.insert(method.to_string(), super::KeptListing { json: json.clone(), at: Instant::now() });
        }
        json
    }

    async fn list_all_afresh(&self, method: &str, key: &str) -> Vec<Value> {
        let servers: Vec<String> = self.servers().cloned().collect();
        let lists = futures::future::join_all(servers.iter().map(|s| self.list_one(s, method, key))).await;
        if method == "tools/list" {
            // Names stay namespaced; a shared name or a description that names another
            // server's tool is flagged for whoever reads the log.
            let listings = servers.iter().cloned().zip(lists.iter().cloned()).collect();
            for c in countersign_policy::collisions(&listings) {
                tracing::warn!(tool = %c.tool, servers = ?c.servers, "tool collision: {}", c.note);
            }
        }
        let mut all = Vec::new();
        for (server, items) in servers.iter().zip(lists) {
            let mut st = self.state();
            for mut item in items {
                if method == "resources/list" {
                    if let Some(uri) = item.get("uri").and_then(Value::as_str) {
                        st.resource_owner.insert(uri.to_string(), server.clone());
                    }
                }
                if let Some(name) = item.get("name").and_then(Value::as_str) {
                    let namespaced = format!("{server}{SEPARATOR}{name}");
                    item["name"] = Value::String(namespaced);
                }
                all.push(item);
            }
        }
        all
    }

    async fn list_one(&self, server: &str, method: &str, key: &str) -> Vec<Value> {
        let Ok(link) = self.link(server).await else { return Vec::new() };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let params = cursor.as_ref().map_or(json!({}), |c| json!({ "cursor": c }));
            let Ok(reply) = self.internal_request(server, &link, method, params).await else { break };
            let Some(result) = reply.get("result").and_then(|r| serde_json::from_str::<Value>(r.get()).ok()) else {
                break;
            };
            if let Some(Value::Array(list)) = result.get(key) {
                items.extend(list.iter().cloned());
            }
            cursor = result.get("nextCursor").and_then(Value::as_str).map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::split_name;

    #[test]
    fn names_split_at_the_first_separator() {
        assert_eq!(split_name("fs__read_file"), Some(("fs", "read_file")));
        assert_eq!(split_name("fs__a__b"), Some(("fs", "a__b")));
        assert_eq!(split_name("__x"), None);
        assert_eq!(split_name("plain"), None);
    }
}
