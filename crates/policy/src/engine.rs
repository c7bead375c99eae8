//! The decision. For one call, in order:
//! 0. the gate: the kill switch, a server off the allowed list or denied as a whole → deny;
//! 1. a deny rule in any layer → deny; then a tool blocked by its pin or quarantined, or
//!    one the server never listed → deny;
//! 2. a tool locked by repeated denials → deny;
//! 3. managed policy (bundle, then managed file): its ask rules, allow rules, then its
//!    class defaults;
//! 4. the user's ask rules, allow rules, then class defaults: where managed policy
//!    decided, the user's answer counts only when it is stricter; user allows and
//!    loosened defaults are ignored when managed policy forbids them;
//! 5. the built-in class default (read → allow, write → ask, sensitive → ask,
//!    destructive → deny).
//!
//! An `ask` that a grant covers becomes `allow`; nothing ever turns a `deny` into anything
//! else. Operations other than tool calls (resources, prompts, completions, listings, a
//! server's requests to the client) are decided by [`Policy::decide_access`]. Client
//! rules match the token a client presented, never the name it gives itself; argument
//! conditions read the arguments as the server will (`CallInput::resolved`). Deny and ask rules also match the name's confusable skeleton, so a case change or
//! a homoglyph does not slip past them. Anything the engine cannot vouch for asks or
//! denies; nothing unknown is ever allowed.

use crate::canonical::canonical_json;
use crate::catalog::Catalog;
use crate::class::{ClassSource, Classification, ToolClass};
use crate::classify;
use crate::decision::{Decision, Verdict};
use crate::error::PolicyError;
use crate::grant::GrantSettings;
use crate::input::{Access, AccessInput, CallInput, ServerInfo, ServerOrigin, Standing, ToolDef};
use crate::layer::Layer;
use crate::layers::{ClassDefaults, ClassOverride, Layers, PolicySettings};
use crate::rule::{qualified_name, Rule, RuleError, RuleList, Subject};
use crate::servers::AllowedServers;
use crate::similar::{NoSimilar, SimilarCall, SimilarOffer, SimilarRule};
use sha2::{Digest, Sha256};

#[derive(Debug)]
struct LayerRules {
    layer: Layer,
    deny: RuleList,
    ask: RuleList,
    allow: RuleList,
    defaults: ClassDefaults,
    classify: RuleList,
    overrides: Vec<ClassOverride>,
}

/// A compiled policy. Cheap to share; decisions take `&self`.
#[derive(Debug)]
pub struct Policy {
    /// Strongest first: bundle, managed, user.
    layers: Vec<LayerRules>,
    user_may_allow: bool,
    grants: GrantSettings,
    grants_layer: Layer,
    once_only: RuleList,
    version: String,
    source: Layers,
    allowed_servers: Vec<AllowedServers>,
    /// Arguments that some rule's condition reads as a file path.
    path_keys: std::collections::BTreeSet<String>,
    /// Who answers a call that asks, per layer (strongest first).
    routes: Vec<crate::approvers::LayerRoutes>,
}

fn compile_list(
    layer: Layer,
    list: &'static str,
    texts: &[String],
    restrictive: bool,
) -> Result<RuleList, PolicyError> {
    for (index, text) in texts.iter().enumerate() {
        let rule = Rule::parse(text).map_err(|error| PolicyError { layer, list, index, error })?;
        if rule.is_request_rule() && list != "deny" {
            let error = RuleError::RequestOutsideDeny(rule.text().to_string());
            return Err(PolicyError { layer, list, index, error });
        }
    }
    RuleList::compile(texts, restrictive).map_err(|error| PolicyError { layer, list, index: 0, error })
}

fn compile_layer(layer: Layer, s: &PolicySettings) -> Result<LayerRules, PolicyError> {
    let patterns: Vec<String> = s.classify.keys().cloned().collect();
    Ok(LayerRules {
        layer,
        deny: compile_list(layer, "deny", &s.deny, true)?,
        ask: compile_list(layer, "ask", &s.ask, true)?,
        allow: compile_list(layer, "allow", &s.allow, false)?,
        defaults: s.defaults,
        classify: compile_list(layer, "classify", &patterns, true)?,
        overrides: s.classify.values().cloned().collect(),
    })
}

impl Policy {
    /// A policy from the user's settings alone.
    pub fn compile(user: &PolicySettings) -> Result<Self, PolicyError> {
        Policy::from_layers(Layers::user_only(user.clone()))
    }

    pub fn from_layers(layers: Layers) -> Result<Self, PolicyError> {
        let compiled =
            layers.stack().into_iter().map(|(layer, s)| compile_layer(layer, s)).collect::<Result<Vec<_>, _>>()?;
        let (grants, grants_layer) = layers.grant_settings();
        let once_only = compile_list(grants_layer, "grants.once_only", &grants.once_only, true)?;
        let version = {
            let doc = serde_json::json!({
                "user": layers.user,
                "managed": layers.managed,
                "bundle": layers.bundle.as_ref().map(|(p, v)| serde_json::json!({"version": v, "policy": p})),
            });
            let digest = Sha256::digest(canonical_json(&doc).as_bytes());
            let hash = &hex::encode(digest)[..16];
            match &layers.bundle {
                Some((_, v)) => format!("bundle-{v}+sha256:{hash}"),
                None => format!("sha256:{hash}"),
            }
        };
        let routes = layers
            .stack()
            .into_iter()
            .map(|(layer, s)| {
                crate::approvers::compile(layer, &s.approvers).map_err(|(index, error)| PolicyError {
                    layer,
                    list: "approvers",
                    index,
                    error,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let allowed_servers = layers
            .stack()
            .into_iter()
            .filter_map(|(layer, s)| s.servers.allowed.as_ref().map(|list| AllowedServers::compile(layer, list)))
            .collect::<Result<Vec<_>, _>>()?;
        let path_keys = compiled
            .iter()
            .flat_map(|l| [&l.deny, &l.ask, &l.allow])
            .flat_map(RuleList::rules)
            .flat_map(|r| r.path_keys().map(str::to_string).collect::<Vec<_>>())
            .collect();
        Ok(Policy {
            routes,
            allowed_servers,
            path_keys,
            layers: compiled,
            user_may_allow: layers.managed_settings().user_may_allow,
            grants,
            grants_layer,
            once_only,
            version,
            source: layers,
        })
    }

    /// The version recorded on every audit record: a digest of every layer in force.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether shadow servers (configured in an AI client around Countersign) must be
    /// reported as alerts: any layer may require it.
    pub fn require_routing(&self) -> bool {
        self.source.stack().iter().any(|(_, s)| s.servers.require_routing)
    }

    /// Why a server may not run, when a layer's allowed list leaves it out.
    pub fn server_blocked(&self, name: &str, origin: &ServerOrigin) -> Option<String> {
        self.allowed_servers
            .iter()
            .find(|list| !list.allows(name, origin))
            .map(|list| format!("`{name}` is not on the {} policy's list of allowed servers", list.layer().as_str()))
    }

    /// Adds, for every path pattern in every rule, the other spelling `alias` gives (the
    /// home folder for `~`, symlinks in the pattern's fixed part followed): the gateway
    /// resolves argument values as the server reads them, so a pattern must name the
    /// same place the same way. The policy's version does not change.
    pub fn alias_paths(&mut self, alias: &dyn Fn(&str) -> Option<String>) {
        for l in &mut self.layers {
            for list in [&mut l.deny, &mut l.ask, &mut l.allow] {
                list.alias_paths(alias);
            }
        }
    }

    /// The arguments some rule's condition reads as a file path (`path` in
    /// `mcp__fs__read_file(path=/work/**)`): the gateway resolves these as the server will.
    pub fn path_keys(&self) -> &std::collections::BTreeSet<String> {
        &self.path_keys
    }

    /// The layers this policy was compiled from.
    pub fn layers(&self) -> &Layers {
        &self.source
    }

    pub fn grant_settings(&self) -> (&GrantSettings, Layer) {
        (&self.grants, self.grants_layer)
    }

    /// The scope "Allow similar" offers for a call of `tool` that asks, or why there is
    /// none: the catalog's reading of "similar" for the server (this tool and folder when
    /// it has none), within `[grants.similar]` and the once-only list.
    /// `project_of(path)` names a file's project (the caller looks at the file system).
    pub fn similar_offer(
        &self,
        server: &ServerInfo,
        tool: &str,
        class: ToolClass,
        client: &str,
        arguments: &serde_json::Value,
        project_of: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SimilarOffer, NoSimilar> {
        let settings = &self.grants.similar;
        if !settings.enabled {
            return Err(NoSimilar::Disabled);
        }
        if !self.grants.lengths.contains(&settings.length) || settings.length == crate::grant::GrantLength::Once {
            return Err(NoSimilar::Length(settings.length.as_str()));
        }
        let name = qualified_name(&server.name, tool);
        let names = [name.clone()];
        let clients = [client];
        let subject = Subject { names: &names, class, clients: &clients, arguments, request: None };
        if self.once_only.first_match(&subject).is_some() {
            return Err(NoSimilar::OnceOnly(name));
        }
        let rule = Catalog::builtin().entry_for(server).and_then(|e| e.similar()).cloned();
        let rule = rule.unwrap_or_else(SimilarRule::fallback);
        let call = SimilarCall { server: &server.name, tool, class, arguments };
        crate::similar::derive(&rule, call, settings, project_of)
    }

    /// Whether policy takes session plans now, or why not (`[grants.plans]`, session
    /// grants allowed at all).
    pub fn plans_offered(&self) -> Result<usize, String> {
        let plans = &self.grants.plans;
        if !plans.enabled {
            return Err("policy takes no session plans".into());
        }
        if !self.grants.lengths.contains(&crate::grant::GrantLength::Session) {
            return Err("policy allows no grants for a session".into());
        }
        Ok((plans.max_items as usize).min(crate::plan::MAX_PLAN_ITEMS))
    }

    /// The session scope one item of a plan would be granted, or why not: the catalog's
    /// reading of the server (this tool and folder when it has none), within
    /// `[grants.similar]`'s depth and exclusions and the once-only list. `class` is the
    /// tool's (`None`: unknown, or `*`).
    pub fn plan_item(
        &self,
        server: &ServerInfo,
        item: &crate::plan::PlanItem,
        class: Option<ToolClass>,
        client: &str,
    ) -> Result<SimilarOffer, String> {
        if item.tool != "*" {
            let name = qualified_name(&server.name, &item.tool);
            let names = [name.clone()];
            let clients = [client];
            let arguments = serde_json::Value::Null;
            let class = class.unwrap_or(ToolClass::Destructive);
            let subject = Subject { names: &names, class, clients: &clients, arguments: &arguments, request: None };
            if self.once_only.first_match(&subject).is_some() {
                return Err(format!("policy keeps `{name}` to one approval at a time"));
            }
        }
        let rule = Catalog::builtin().entry_for(server).and_then(|e| e.similar()).cloned();
        let rule = rule.unwrap_or_else(SimilarRule::fallback);
        crate::plan::item_offer(&rule, item, class, &self.grants.similar).map_err(|e| e.to_string())
    }

    /// The compiled once-only list, for issuing grants.
    pub fn once_only(&self) -> &RuleList {
        &self.once_only
    }

    /// A tool's class before its arguments are seen: managed overrides, then the catalog,
    /// annotations and heuristics, then the user's overrides (which only tighten).
    pub fn classify(&self, server: &ServerInfo, tool: &str, def: Option<&ToolDef>) -> Classification {
        let names = [qualified_name(&server.name, tool)];
        let subject = Subject {
            names: &names,
            class: ToolClass::Write,
            clients: &[],
            arguments: &serde_json::Value::Null,
            request: None,
        };
        let find = |l: &LayerRules| {
            l.classify
                .first_index(&subject)
                .map(|i| (l.layer, l.classify.text_at(i).to_string(), l.overrides[i].clone()))
        };
        let managed = self.layers.iter().filter(|l| l.layer.is_managed()).find_map(find);
        let mut c = match managed {
            Some((layer, pattern, o)) => Classification {
                class: o.class(),
                label: o.label().map(str::to_string),
                source: ClassSource::Managed,
                reason: format!("{} policy classifies `{pattern}` as {}", layer.as_str(), o.class()),
                redact: o.redact().to_vec(),
            },
            None => classify::base(Catalog::builtin(), server, tool, def),
        };
        if let Some((_, pattern, o)) = self.layers.iter().filter(|l| l.layer == Layer::User).find_map(find) {
            let user = Classification {
                class: o.class(),
                label: o.label().map(str::to_string),
                source: ClassSource::User,
                reason: format!("your policy classifies `{pattern}` as {}", o.class()),
                redact: o.redact().to_vec(),
            };
            c = c.tightened_by(user);
        }
        c
    }

    /// The deny rule that covers every tool of `server` for this client token, if one
    /// does. Nothing of such a server is reachable: not its resources, prompts or
    /// listings either, and it is not even started.
    pub fn server_denied(&self, server: &str, client_token: &str) -> Option<(Layer, String)> {
        self.whole_server_rule(server, client_token, |l| &l.deny).map(|(layer, r)| (layer, r.text().to_string()))
    }

    /// The first rule of a list (`pick` chooses which) that covers every tool of `server`
    /// for this client token, and its layer.
    fn whole_server_rule(
        &self,
        server: &str,
        client_token: &str,
        pick: impl Fn(&LayerRules) -> &RuleList,
    ) -> Option<(Layer, &Rule)> {
        let names = [format!("mcp__{server}__*"), format!("mcp__{}__*", classify::skeleton(server))];
        let clients = [client_token];
        let subject = Subject {
            names: &names,
            class: ToolClass::Read,
            clients: &clients,
            arguments: &serde_json::Value::Null,
            request: None,
        };
        self.layers.iter().find_map(|l| pick(l).first_match(&subject).map(|r| (l.layer, r)))
    }

    /// A verdict about a server or an operation other than a tool call (class `read`).
    fn access_verdict(&self, decision: Decision, rule: String, reason: String, layer: Layer) -> Verdict {
        Verdict {
            decision,
            rule,
            reason,
            layer,
            class: ToolClass::Read,
            label: None,
            class_source: ClassSource::Heuristic,
            class_reason: String::new(),
            policy_version: self.version.clone(),
            grant: None,
            route: None,
        }
    }

    /// The server's scope (a project's server, for another client), the kill switch (when
    /// `paused` applies) or the allowed-server list, if any keeps `server` out.
    fn switch_or_list(&self, server: &ServerInfo, client_token: &str, paused: bool) -> Option<Verdict> {
        let deny = |rule: String, reason: String, layer| self.access_verdict(Decision::Deny, rule, reason, layer);
        if let Some(scope) = server.scope.as_ref().filter(|s| !s.admits(client_token)) {
            let reason = format!(
                "server `{}` was added from the project folder {} and serves only that project's own entries",
                server.name, scope.project
            );
            return Some(deny("scope:project".into(), reason, Layer::User));
        }
        if paused {
            return Some(deny("paused".into(), "AI tool access is paused in Countersign".into(), Layer::User));
        }
        self.server_blocked(&server.name, &server.origin).map(|why| deny("servers.allowed".into(), why, Layer::Managed))
    }

    /// Why nothing of `server` may be reached by this client right now, if so: its scope
    /// (another project's server), the kill switch, the allowed-server list, or a deny rule
    /// covering the whole server. The
    /// verdict names the rule; `None` means the server may be started and reached.
    pub fn server_gate(&self, server: &ServerInfo, client_token: &str, paused: bool) -> Option<Verdict> {
        if let Some(v) = self.switch_or_list(server, client_token, paused) {
            return Some(v);
        }
        let deny = |rule: String, reason: String, layer| self.access_verdict(Decision::Deny, rule, reason, layer);
        self.server_denied(&server.name, client_token).map(|(layer, rule)| {
            let reason = format!(
                "everything on server `{}` is denied by the {} policy rule `{rule}`",
                server.name,
                layer.as_str()
            );
            deny("deny:server".into(), reason, layer)
        })
    }

    /// Decides an operation other than a tool call: reading a resource, getting a prompt,
    /// completing, subscribing, listing, or a request the server sends to the client.
    /// Denied when the whole server is (see [`Policy::server_gate`]; listings stay
    /// possible while paused); a server's request is also denied by a `request:` rule.
    /// Otherwise allowed: what these read is what the server offers to every client.
    pub fn decide_access(&self, input: &AccessInput<'_>) -> Verdict {
        let listing = matches!(input.access, Access::List { .. });
        if let Some(v) = self.server_gate(input.server, &input.identity.client_token, input.paused && !listing) {
            return v;
        }
        let method = input.access.method();
        let reason = format!("`{method}` on server `{}` reads what the server offers", input.server.name);
        let mut v = self.access_verdict(Decision::Allow, "default:access".into(), reason, Layer::Builtin);
        if let Access::ServerRequest { method } = input.access {
            let names = [qualified_name(&input.server.name, method)];
            let clients = [input.identity.client_token.as_str()];
            let subject = Subject {
                names: &names,
                class: ToolClass::Read,
                clients: &clients,
                arguments: &serde_json::Value::Null,
                request: Some(method),
            };
            for l in &self.layers {
                if let Some(rule) = l.deny.first_match(&subject) {
                    v.decision = Decision::Deny;
                    v.rule = format!("deny:{}", rule.text());
                    v.reason = format!(
                        "server `{}` may not send `{method}`: the {} policy rule `{}` denies it",
                        input.server.name,
                        l.layer.as_str(),
                        rule.text()
                    );
                    v.layer = l.layer;
                    return v;
                }
            }
            v.rule = "default:server-request".into();
            v.reason = format!("server `{}` asks the client for `{method}`", input.server.name);
            return v;
        }
        // Reading a resource or a prompt, or completing, is reading the server: an ask rule
        // for the whole server (or for class:read), or a stricter default for reads, holds
        // here as it does for its read tools.
        if matches!(
            input.access,
            Access::ReadResource { .. } | Access::Subscribe { .. } | Access::GetPrompt { .. } | Access::Complete
        ) {
            if let Some(stricter) = self.read_stance(&input.server.name, &input.identity.client_token) {
                return stricter;
            }
        }
        v
    }

    /// What the rules say of reading from `server` as a whole, when it is stricter than
    /// allowing: an ask rule covering every tool of the server (or reads), or a default
    /// for the read class of ask or deny (managed first; the user's only when stricter).
    fn read_stance(&self, server: &str, client_token: &str) -> Option<Verdict> {
        if let Some((layer, rule)) = self.whole_server_rule(server, client_token, |l| &l.ask) {
            let reason = format!(
                "reading from server `{server}` needs approval under the {} policy rule `{}`",
                layer.as_str(),
                rule.text()
            );
            return Some(self.access_verdict(Decision::Ask, format!("ask:{}", rule.text()), reason, layer));
        }
        let managed =
            self.layers.iter().filter(|l| l.layer.is_managed()).find_map(|l| l.defaults.read.map(|d| (d, l.layer)));
        let user =
            self.layers.iter().filter(|l| l.layer == Layer::User).find_map(|l| l.defaults.read.map(|d| (d, l.layer)));
        let (decision, layer) = match (managed, user) {
            (Some(m), Some(u)) if u.0 > m.0 => u,
            (Some(m), _) => m,
            (None, Some(u)) if u.0 > Decision::Allow => u,
            _ => return None,
        };
        (decision > Decision::Allow).then(|| {
            let reason = format!(
                "reads {} under the {} policy's default for the read class",
                match decision {
                    Decision::Ask => "need approval",
                    _ => "are denied",
                },
                layer.as_str()
            );
            self.access_verdict(decision, "default:read".into(), reason, layer)
        })
    }

    pub fn decide(&self, call: &CallInput<'_>) -> Verdict {
        let static_class = self.classify(call.server, call.tool, call.def);
        self.decide_classified(call, &static_class)
    }

    /// Who answers a call of `tool` on `server` (of class `class`, by `client`, with
    /// `arguments`) that asks, by this policy's routes alone: what the hub checks a
    /// device's routed request against.
    pub fn route_for(
        &self,
        server: &str,
        tool: &str,
        class: ToolClass,
        client: &str,
        arguments: &serde_json::Value,
    ) -> crate::approvers::Route {
        let name = qualified_name(server, tool);
        let skeleton = qualified_name(&classify::skeleton(server), &classify::skeleton(tool));
        let names = [name, skeleton];
        let clients = [client];
        let subject = Subject { names: &names, class, clients: &clients, arguments, request: None };
        crate::approvers::route(self.routes.iter(), &subject)
    }

    /// Decides with the tool's class already known (the gateway caches it per tool).
    pub fn decide_classified(&self, call: &CallInput<'_>, static_class: &Classification) -> Verdict {
        let class = classify::for_call(static_class, call.arguments);
        let name = qualified_name(&call.server.name, call.tool);
        let skeleton = qualified_name(&classify::skeleton(&call.server.name), &classify::skeleton(call.tool));
        let names_loose = [name.clone(), skeleton];
        let names = if names_loose[0] == names_loose[1] { &names_loose[..1] } else { &names_loose[..] };
        let exact = &names_loose[..1];
        // Who the client is comes from its token; what it says of itself is not matched.
        let clients = [call.identity.client_token.as_str()];
        let restrictive = Subject {
            names,
            class: class.class,
            clients: &clients,
            arguments: call.condition_arguments(),
            request: None,
        };
        let permissive = Subject { names: exact, ..restrictive };
        let verdict = |decision, rule: String, reason: String, layer| Verdict {
            decision,
            rule,
            reason,
            layer,
            class: class.class,
            label: class.label.clone(),
            class_source: class.source,
            class_reason: class.reason.clone(),
            policy_version: self.version.clone(),
            grant: None,
            route: None,
        };
        let by_rule = |kind: &str, decision, rule: &Rule, layer: Layer| {
            let what = match decision {
                Decision::Deny => "is denied",
                Decision::Ask => "needs approval",
                Decision::Allow => "is allowed",
            };
            verdict(
                decision,
                format!("{kind}:{}", rule.text()),
                format!("`{name}` {what} by the {} policy rule `{}`", layer.as_str(), rule.text()),
                layer,
            )
        };

        // The kill switch and the allowed-server list first; a deny rule covering the whole
        // server is one of the deny rules checked next (it names the tool too).
        if let Some(mut v) = self.switch_or_list(call.server, &call.identity.client_token, call.gate.paused) {
            v.class = class.class;
            v.label = class.label.clone();
            v.class_source = class.source;
            v.class_reason = class.reason.clone();
            return v;
        }
        for l in &self.layers {
            if let Some(rule) = l.deny.first_match(&restrictive) {
                return by_rule("deny", Decision::Deny, rule, l.layer);
            }
        }
        match call.gate.standing {
            Standing::Listed => {}
            Standing::Blocked { rule, why } => {
                return verdict(Decision::Deny, rule.to_string(), why.to_string(), Layer::Builtin);
            }
            Standing::Unlisted => {
                let reason = format!(
                    "`{name}` is not a tool server `{}` listed, so nobody has seen what it does; it was refused \
                     without asking",
                    call.server.name
                );
                return verdict(Decision::Deny, "unlisted".into(), reason, Layer::Builtin);
            }
        }
        if let Some(until) = call
            .grants
            .and_then(|g| g.locked_until(&call.identity.client_token, &call.server.name, call.tool, call.now_ms))
        {
            let secs = until.saturating_sub(call.now_ms).div_ceil(1000);
            return verdict(
                Decision::Deny,
                "lockout".into(),
                format!("`{name}` was denied repeatedly and is locked for another {secs}s"),
                self.grants_layer,
            );
        }
        // What managed policy says, then what the user says; the user's word counts only
        // where managed policy is silent, or where it is stricter.
        let mut managed = None;
        for l in self.layers.iter().filter(|l| l.layer.is_managed()) {
            if let Some(rule) = l.ask.first_match(&restrictive) {
                managed = Some(by_rule("ask", Decision::Ask, rule, l.layer));
            } else if let Some(rule) = l.allow.first_match(&permissive) {
                managed = Some(by_rule("allow", Decision::Allow, rule, l.layer));
            } else if let Some(d) = l.defaults.get(class.class) {
                managed = Some(self.by_default(&verdict, &name, d, &class, l.layer));
            }
            if managed.is_some() {
                break;
            }
        }
        let builtin = ClassDefaults::builtin(class.class);
        let mut user = None;
        for l in self.layers.iter().filter(|l| l.layer == Layer::User) {
            if let Some(rule) = l.ask.first_match(&restrictive) {
                user = Some(by_rule("ask", Decision::Ask, rule, l.layer));
            } else if let Some(rule) = l.allow.first_match(&permissive).filter(|_| self.user_may_allow) {
                user = Some(by_rule("allow", Decision::Allow, rule, l.layer));
            } else if let Some(d) = l.defaults.get(class.class).filter(|d| self.user_may_allow || *d >= builtin) {
                user = Some(self.by_default(&verdict, &name, d, &class, l.layer));
            }
        }
        let mut v = match (managed, user) {
            (Some(m), Some(u)) if u.decision > m.decision => u,
            (Some(m), _) => m,
            (None, Some(u)) if self.user_may_allow || u.decision >= builtin => u,
            _ => self.by_default(&verdict, &name, builtin, &class, Layer::Builtin),
        };
        // Who answers is settled first: a call policy routes to someone else is never let
        // through by a grant the person here gave (they are not its approver).
        let route = (v.decision == Decision::Ask).then(|| crate::approvers::route(self.routes.iter(), &restrictive));
        if v.decision == Decision::Ask && route.as_ref().is_some_and(crate::approvers::Route::is_local) {
            // A similar grant for the server's writes covers only tools the catalog or
            // managed policy vouches for as writes (not an unclassified tool a server
            // added after the grant), and never one kept to once.
            let vouched = matches!(class.source, ClassSource::Catalog | ClassSource::Managed);
            let once_only = |g: &crate::grant::Grant| {
                g.similar.is_none() || {
                    let wide =
                        g.similar.as_ref().is_some_and(|s| s.offer.tools == crate::similar::SimilarTools::Writes);
                    let names = [name.clone()];
                    let clients = [call.identity.client_token.as_str()];
                    let subject = Subject {
                        names: &names,
                        class: class.class,
                        clients: &clients,
                        arguments: call.condition_arguments(),
                        request: None,
                    };
                    self.once_only.first_match(&subject).is_none() && (!wide || vouched)
                }
            };
            let covering =
                call.grants.and_then(|g| g.covering_where(&call.grant_call_as(Some(class.class)), &once_only));
            if let Some(grant) = covering {
                v.decision = Decision::Allow;
                v.rule = format!("grant:{}", grant.id);
                v.reason = format!("`{name}` was approved earlier ({})", grant_kind(grant));
                v.grant = Some(grant.id.clone());
            }
        }
        if v.decision == Decision::Ask {
            v.route = route;
        }
        v
    }

    fn by_default(
        &self,
        verdict: &dyn Fn(Decision, String, String, Layer) -> Verdict,
        name: &str,
        d: Decision,
        class: &Classification,
        layer: Layer,
    ) -> Verdict {
        let what = match d {
            Decision::Allow => "runs without asking",
            Decision::Ask => "needs approval",
            Decision::Deny => "is denied",
        };
        let whose =
            if layer == Layer::Builtin { String::new() } else { format!(" under the {} policy", layer.as_str()) };
        verdict(
            d,
            format!("default:{}", class.class),
            format!("`{name}` is a {} tool ({}), and a {} tool {what}{whose}", class.class, class.reason, class.class),
            layer,
        )
    }
}

fn grant_kind(g: &crate::grant::Grant) -> &str {
    if let Some(scope) = &g.similar {
        return &scope.offer.words;
    }
    match g.scope {
        crate::grant::GrantScope::Once { .. } => "once, for these exact arguments",
        crate::grant::GrantScope::Session { .. } => "for this session",
        crate::grant::GrantScope::Until { .. } => "for a while",
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
