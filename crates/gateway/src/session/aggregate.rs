//! The aggregate endpoint `/mcp`: every configured server behind one session. Tools,
//! prompts, resources and resource templates are listed with names namespaced
//! `server__name`, and a call is routed by that prefix with the original name restored.
//! Servers start on first use, not when a client connects; a server that fails to start,
//! or that this client may not reach, is left out (and said so) rather than failing the
//! rest.

use super::{Release, Reply, Session};
use crate::govern::access::Subject;
use crate::govern::methods::{shorten, Listing, Operation};
use crate::govern::OwnRequest;
use crate::message::{self, code, Envelope};
use serde_json::{json, Value};
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

/// A server's resource template, as the aggregate endpoint routes by it.
pub(crate) struct TemplateOwner {
    server: String,
    template: String,
    compiled: Option<super::uri_template::UriTemplate>,
}

/// Why a resource URI has no server on the aggregate endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unrouted {
    /// No server lists it or offers a template that describes it.
    Unknown,
    /// More than one does: it is refused rather than sent to either.
    Ambiguous,
}

impl Unrouted {
    fn error(self, id: Option<&serde_json::value::RawValue>, uri: &str) -> String {
        match self {
            Unrouted::Unknown => message::error_with_data(
                id,
                code::RESOURCE_NOT_FOUND,
                &format!(
                    "resource not found: no server behind /mcp lists `{}` or offers a template for it",
                    shorten(uri)
                ),
                &json!({ "uri": uri }),
            ),
            Unrouted::Ambiguous => message::error_with_data(
                id,
                code::INVALID_PARAMS,
                "more than one server offers this resource: read it through /mcp/<server>",
                &json!({ "uri": uri }),
            ),
        }
    }
}

/// Protocol versions the aggregate endpoint speaks, newest first.
const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];

impl Session {
    /// Answers the client's `initialize` for every server without starting any: each
    /// starts on first use, with the client's own `initialize` replayed to it. The
    /// capabilities are what the gateway relays (tools, prompts, resources with their
    /// change notices, logging, completions); what a server lacks it answers with an
    /// empty listing or a clear error.
    pub fn aggregate_initialize(self: &Arc<Self>, id: Option<&serde_json::value::RawValue>) -> String {
        let requested = self.protocol_version();
        let version = match requested.as_deref() {
            Some(r) if VERSIONS.contains(&r) => r.to_string(),
            _ => VERSIONS[0].to_string(),
        };
        self.set_protocol_version(&version);
        let servers: Vec<String> = self.servers().cloned().collect();
        let instructions = format!(
            "Countersign gateway for: {}. Names are `server__name`.",
            if servers.is_empty() { "no servers".to_string() } else { servers.join(", ") }
        );
        let mut result = json!({
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": true},
                "prompts": {"listChanged": true},
                "resources": {"listChanged": true, "subscribe": true},
                "logging": {},
                "completions": {},
            },
            "serverInfo": {"name": "countersign", "version": env!("CARGO_PKG_VERSION")},
            "instructions": instructions,
        });
        // A client that runs tool calls as tasks gets them run by the gateway here too.
        self.offer_tasks(&mut self.state(), &mut result);
        message::result_response(id, &result)
    }

    pub(super) async fn aggregate_request(self: &Arc<Self>, op: Operation, mut env: Envelope, reply: Reply) {
        let started = Instant::now();
        let id = env.id().map(|r| r.to_owned());
        let refuse = |text: &str| message::error_response(id.as_deref(), code::INVALID_REQUEST, text);
        match op {
            Operation::List(listing) => {
                let subject = Subject::of(op, &env.params().unwrap_or(Value::Null));
                if let Err(text) = self.govern_access(None, &subject, started).await {
                    return self.answer(reply, refuse(&text));
                }
                let items = self.list_all(listing).await;
                let mut text = message::result_with_raw_member(id.as_deref(), listing.key(), &items);
                if listing.method() == "tools/list" && self.offers_tasks() {
                    if let Ok(mut result) = serde_json::from_str::<Value>(&text) {
                        Session::tools_as_tasks(&mut result["result"]);
                        text = result.to_string();
                    }
                }
                let text = match (self.stateless, Envelope::parse(&text)) {
                    (true, Ok(mut env)) => {
                        super::stateless::without_cache_hints(listing.method(), &mut env);
                        env.to_json()
                    }
                    _ => text,
                };
                self.answer(reply, text);
            }
            Operation::GetPrompt => {
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
                        let subject = Subject::of(op, &params);
                        match self.govern_access(Some(&server), &subject, started).await {
                            Ok(permit) => self.forward(&server, env, reply, Release::Permit(permit, started)).await,
                            Err(text) => self.answer(reply, refuse(&text)),
                        }
                    }
                    None => self.answer(
                        reply,
                        message::error_response(
                            id.as_deref(),
                            code::INVALID_PARAMS,
                            &format!("unknown prompt `{}`", shorten(&name)),
                        ),
                    ),
                }
            }
            Operation::ReadResource | Operation::Subscribe | Operation::Unsubscribe => {
                let params = env.params().unwrap_or(Value::Null);
                let uri = params.get("uri").and_then(Value::as_str).unwrap_or_default().to_string();
                match self.resource_server(&uri).await {
                    Ok(server) => {
                        let subject = Subject::of(op, &params);
                        match self.govern_access(Some(&server), &subject, started).await {
                            Ok(permit) => self.forward(&server, env, reply, Release::Permit(permit, started)).await,
                            Err(text) => self.answer(reply, refuse(&text)),
                        }
                    }
                    Err(unrouted) => self.answer(reply, unrouted.error(id.as_deref(), &uri)),
                }
            }
            Operation::Complete => {
                let Ok(mut params) = env.params() else {
                    return self
                        .answer(reply, message::error_response(id.as_deref(), code::INVALID_PARAMS, "bad params"));
                };
                let server = match self.completion_server(&mut params, id.as_deref()).await {
                    Ok(server) => server,
                    Err(answer) => return self.answer(reply, answer),
                };
                env.set_params(&params);
                let subject = Subject::of(op, &params);
                match self.govern_access(Some(&server), &subject, started).await {
                    Ok(permit) => self.forward(&server, env, reply, Release::Permit(permit, started)).await,
                    Err(text) => self.answer(reply, refuse(&text)),
                }
            }
            Operation::SetLogLevel => {
                // Only to the servers that are running: a log level starts nothing.
                let servers: Vec<String> = self.servers().cloned().collect();
                let params = env.params().unwrap_or(Value::Null);
                for server in servers {
                    if let Some(link) = self.live_link(&server) {
                        let _ = self.internal_request(&server, &link, OwnRequest::SetLogLevel, params.clone()).await;
                    }
                }
                self.answer(reply, message::result_response(id.as_deref(), &json!({})));
            }
            _ => self.answer(
                reply,
                message::error_response(
                    id.as_deref(),
                    code::METHOD_NOT_FOUND,
                    &format!(
                        "`{}` is not available on the aggregate endpoint /mcp; use /mcp/<server>",
                        env.method().unwrap_or_default()
                    ),
                ),
            ),
        }
    }

    /// The server a resource URI belongs to: the one that listed it, else the one whose
    /// resource template describes it (a completion's `ref/resource` names the template
    /// itself). What no listing names yet is looked up in fresh listings once.
    async fn resource_server(&self, uri: &str) -> Result<String, Unrouted> {
        if let Some(found) = self.resource_owner_now(uri) {
            return found;
        }
        self.list_all(Listing::Resources).await;
        self.list_all(Listing::ResourceTemplates).await;
        self.resource_owner_now(uri).unwrap_or(Err(Unrouted::Unknown))
    }

    fn resource_owner_now(&self, uri: &str) -> Option<Result<String, Unrouted>> {
        let st = self.state();
        match st.resource_owner.get(uri) {
            Some(Some(server)) => return Some(Ok(server.clone())),
            Some(None) => return Some(Err(Unrouted::Ambiguous)),
            None => {}
        }
        let mut servers: Vec<&str> = st
            .resource_templates
            .iter()
            .filter(|t| t.template == uri || t.compiled.as_ref().is_some_and(|c| c.matches(uri)))
            .map(|t| t.server.as_str())
            .collect();
        servers.dedup();
        match servers.as_slice() {
            [] => None,
            [one] => Some(Ok(one.to_string())),
            _ => Some(Err(Unrouted::Ambiguous)),
        }
    }

    /// Where a `completion/complete` goes, by its `ref`: a namespaced prompt name (restored
    /// to the server's own in `params`), or a resource template's URI. Otherwise the error
    /// answer for request `id`.
    async fn completion_server(
        &self,
        params: &mut Value,
        id: Option<&serde_json::value::RawValue>,
    ) -> Result<String, String> {
        let kind = params.pointer("/ref/type").and_then(Value::as_str).unwrap_or_default().to_string();
        match kind.as_str() {
            "ref/prompt" => {
                let name = params.pointer("/ref/name").and_then(Value::as_str).unwrap_or_default().to_string();
                match split_name(&name).filter(|(s, _)| self.links.contains_key(*s)) {
                    Some((server, original)) => {
                        params["ref"]["name"] = Value::String(original.to_string());
                        Ok(server.to_string())
                    }
                    None => {
                        let text = format!("unknown prompt `{}`: names on /mcp are `server__prompt`", shorten(&name));
                        Err(message::error_response(id, code::INVALID_PARAMS, &text))
                    }
                }
            }
            "ref/resource" => {
                let uri = params.pointer("/ref/uri").and_then(Value::as_str).unwrap_or_default().to_string();
                self.resource_server(&uri).await.map_err(|unrouted| unrouted.error(id, &uri))
            }
            other => {
                let text = format!("a completion's ref is `ref/prompt` or `ref/resource`, not `{}`", shorten(other));
                Err(message::error_response(id, code::INVALID_PARAMS, &text))
            }
        }
    }

    /// Lists `key` items from every server (following cursors), names namespaced, as a
    /// JSON array. Kept for the session, as clients keep a listing, until a server says
    /// its list changed, an upstream (re)starts, or `LIST_MAX_AGE` passes; so listing
    /// 100 servers costs about what listing one does.
    async fn list_all(&self, listing: Listing) -> Arc<str> {
        let method = listing.method();
        if let Some(kept) = self.state().listings.get(method) {
            if kept.at.elapsed() < LIST_MAX_AGE {
                return kept.json.clone();
            }
        }
        let generation = self.state().listing_generation;
        let items = self.list_all_afresh(listing).await;
        let json: Arc<str> = Value::Array(items).to_string().into();
        let mut st = self.state();
        // A change announced while listing makes this listing stale at once.
        if st.listing_generation == generation {
            st.listings.insert(method.to_string(), super::KeptListing { json: json.clone(), at: Instant::now() });
        }
        json
    }

    async fn list_all_afresh(&self, listing: Listing) -> Vec<Value> {
        let method = listing.method();
        // A server this client may not reach is left out, and not started to be listed.
        let servers: Vec<String> = self.servers().filter(|s| self.may_list(s, listing)).cloned().collect();
        let lists = futures::future::join_all(servers.iter().map(|s| self.list_one(s, listing))).await;
        if method == "tools/list" {
            // Names stay namespaced; a shared name or a description that names another
            // server's tool is flagged for whoever reads the log.
            let listings = servers.iter().cloned().zip(lists.iter().cloned()).collect();
            for c in countersign_policy::collisions(&listings) {
                tracing::warn!(tool = %c.tool, servers = ?c.servers, "tool collision: {}", c.note);
            }
        }
        let mut all = Vec::new();
        // A URI two servers list belongs to neither here: a read of it is refused rather
        // than sent to whichever listed it last.
        let mut owners: std::collections::HashMap<String, Option<String>> = Default::default();
        let mut templates = Vec::new();
        for (server, items) in servers.iter().zip(lists) {
            for mut item in items {
                if let Some(template) = item.get("uriTemplate").and_then(Value::as_str) {
                    let compiled = super::uri_template::UriTemplate::parse(template);
                    if compiled.is_none() {
                        tracing::debug!(server, "a resource template that is not RFC 6570 routes nothing");
                    }
                    templates.push(TemplateOwner { server: server.clone(), template: template.to_string(), compiled });
                }
                if method == "resources/list" {
                    if let Some(uri) = item.get("uri").and_then(Value::as_str) {
                        owners
                            .entry(uri.to_string())
                            .and_modify(|o| {
                                if o.as_deref() != Some(server.as_str()) {
                                    *o = None;
                                }
                            })
                            .or_insert_with(|| Some(server.clone()));
                    }
                }
                if let Some(name) = item.get("name").and_then(Value::as_str) {
                    let namespaced = format!("{server}{SEPARATOR}{name}");
                    item["name"] = Value::String(namespaced);
                }
                all.push(item);
            }
        }
        if method == "resources/list" {
            self.state().resource_owner = owners;
        }
        if method == "resources/templates/list" {
            self.state().resource_templates = templates;
        }
        all
    }

    async fn list_one(&self, server: &str, listing: Listing) -> Vec<Value> {
        let key = listing.key();
        let link = match self.link(server).await {
            Ok(link) => link,
            Err(why) => {
                tracing::warn!(server, "left out of the aggregate listing: {why}");
                return Vec::new();
            }
        };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let params = cursor.as_ref().map_or(json!({}), |c| json!({ "cursor": c }));
            let Ok(reply) = self.internal_request(server, &link, OwnRequest::List(listing), params).await else {
                break;
            };
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

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod more_tests;
