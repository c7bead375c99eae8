//! Who answers a call that asks. `[[policy.approvers]]` routes calls by rule to `self`
//! (the person at the laptop, the default), `owner` (an agent's owner), `manager` (the
//! asker's manager, as the IdP provisions it), a person (`alice@example.com`) or a group
//! (`group:it-approvers`); `self_approval = false` keeps the asker from answering their
//! own request (separation of duties), and `fallback` says what happens when the hub
//! that carries a routed request cannot be reached (`deny`, the default, or `self`).
//!
//! Managed layers only tighten: a route a managed layer (bundle, then managed file) sets
//! holds whatever the user's layer says; the user's routes count only where managed
//! policy routes nothing. Pure: it names the approver, it never finds or asks them.

use crate::layer::Layer;
use crate::rule::{RuleError, RuleList, Subject};
use serde::{Deserialize, Serialize};

/// One `[[policy.approvers]]` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproverRule {
    /// The calls it routes, in rule syntax (`class:write`, `mcp__github__*`,
    /// `mcp__fs__write_file(path=/srv/**)`, `client:agent-*`).
    pub rule: String,
    /// `self`, `owner`, `manager`, a person's email, or `group:NAME`.
    pub approver: String,
    /// Whether the person who asks may answer their own request. `false` (separation of
    /// duties) needs an approver other than `self`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub self_approval: bool,
    /// When the hub cannot be reached: `deny` (fail closed, the default) or `self`.
    #[serde(default, skip_serializing_if = "is_deny")]
    pub fallback: Fallback,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_deny(f: &Fallback) -> bool {
    *f == Fallback::Deny
}

/// Who answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Approver {
    /// The person at this laptop.
    #[serde(rename = "self")]
    Myself,
    /// The owner of the agent that asks.
    Owner,
    /// The asker's manager, from the IdP.
    Manager,
    /// One person, by email (lower case).
    Person(String),
    /// Every member of a group the IdP provisions.
    Group(String),
}

impl Approver {
    /// `self`, `owner`, `manager`, `group:NAME` or an email.
    pub fn parse(text: &str) -> Result<Approver, RuleError> {
        let t = text.trim();
        let bad = |why: &str| RuleError::BadApprover { approver: text.to_string(), why: why.to_string() };
        Ok(match t {
            "self" => Approver::Myself,
            "owner" => Approver::Owner,
            "manager" => Approver::Manager,
            _ => match t.strip_prefix("group:") {
                Some(g) if !g.trim().is_empty() && !g.chars().any(char::is_control) => Approver::Group(g.to_string()),
                Some(_) => return Err(bad("a group needs a name")),
                None => {
                    let (local, domain) = t.split_once('@').ok_or_else(|| bad("not an email"))?;
                    let fine = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
                    if !fine(local) || !fine(domain) || !domain.contains('.') || domain.contains('@') {
                        return Err(bad("not an email"));
                    }
                    Approver::Person(t.to_lowercase())
                }
            },
        })
    }

    /// As policy writes it.
    pub fn text(&self) -> String {
        match self {
            Approver::Myself => "self".into(),
            Approver::Owner => "owner".into(),
            Approver::Manager => "manager".into(),
            Approver::Person(email) => email.clone(),
            Approver::Group(name) => format!("group:{name}"),
        }
    }
}

/// What happens when the hub cannot carry a routed request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Deny at once, saying so.
    #[default]
    Deny,
    /// Ask the person at this laptop instead.
    #[serde(rename = "self")]
    Myself,
}

/// Where one call's approval goes, and under which rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "ApprovalRoute"))]
pub struct Route {
    pub approver: Approver,
    pub self_approval: bool,
    pub fallback: Fallback,
    /// The `[[policy.approvers]]` rule that routed it; none: the default (`self`).
    pub rule: Option<String>,
    pub layer: Layer,
}

impl Route {
    /// No rule routes the call: the person at the laptop answers.
    pub fn default_route() -> Route {
        Route {
            approver: Approver::Myself,
            self_approval: true,
            fallback: Fallback::Deny,
            rule: None,
            layer: Layer::Builtin,
        }
    }

    /// Whether the person at this laptop answers (no hub involved).
    pub fn is_local(&self) -> bool {
        self.approver == Approver::Myself
    }

    /// Who answers, as a person reads it ("the owner of this agent", "alice@example.com").
    pub fn who(&self) -> String {
        let who = match &self.approver {
            Approver::Myself => "you, at this computer".to_string(),
            Approver::Owner => "the agent's owner".to_string(),
            Approver::Manager => "your manager".to_string(),
            Approver::Person(email) => email.clone(),
            Approver::Group(name) => format!("a member of group {name}"),
        };
        match (&self.rule, self.self_approval) {
            (Some(_), _) if self.layer == Layer::Builtin => who,
            (Some(rule), true) => format!("{who} (by the {} policy's rule `{rule}`)", self.layer.as_str()),
            (Some(rule), false) => {
                format!("{who}, never the asker (by the {} policy's rule `{rule}`)", self.layer.as_str())
            }
            (None, _) => who,
        }
    }
}

/// One layer's routes, compiled.
#[derive(Debug)]
pub struct LayerRoutes {
    pub layer: Layer,
    rules: RuleList,
    routes: Vec<Route>,
}

/// Compiles one layer's `[[policy.approvers]]`; an error names the entry (its index)
/// and what is wrong.
pub fn compile(layer: Layer, entries: &[ApproverRule]) -> Result<LayerRoutes, (usize, RuleError)> {
    let mut routes = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        crate::rule::Rule::parse(&e.rule).map_err(|err| (i, err))?;
        let approver = Approver::parse(&e.approver).map_err(|err| (i, err))?;
        if !e.self_approval && e.fallback == Fallback::Myself {
            return Err((
                i,
                RuleError::BadApprover {
                    approver: e.approver.clone(),
                    why: "`self_approval = false` cannot fall back to `self` (the asker would answer)".into(),
                },
            ));
        }
        if approver == Approver::Myself && !e.self_approval {
            return Err((
                i,
                RuleError::BadApprover {
                    approver: e.approver.clone(),
                    why: "`self_approval = false` needs an approver other than `self`".into(),
                },
            ));
        }
        routes.push(Route {
            approver,
            self_approval: e.self_approval,
            fallback: e.fallback,
            rule: Some(e.rule.clone()),
            layer,
        });
    }
    let texts: Vec<String> = entries.iter().map(|e| e.rule.clone()).collect();
    let rules = RuleList::compile(&texts, true).map_err(|err| (0, err))?;
    Ok(LayerRoutes { layer, rules, routes })
}

/// The route for a call: the first managed layer's first matching entry, else the
/// user's, else the default. `layers` come strongest first.
pub fn route<'a>(layers: impl Iterator<Item = &'a LayerRoutes> + Clone, subject: &Subject<'_>) -> Route {
    let first = |managed: bool| {
        layers
            .clone()
            .filter(|l| l.layer.is_managed() == managed)
            .find_map(|l| l.rules.first_index(subject).map(|i| l.routes[i].clone()))
    };
    first(true).or_else(|| first(false)).unwrap_or_else(Route::default_route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::class::ToolClass;
    use serde_json::json;

    fn entry(rule: &str, approver: &str) -> ApproverRule {
        ApproverRule { rule: rule.into(), approver: approver.into(), self_approval: true, fallback: Fallback::Deny }
    }

    fn routed(layers: &[LayerRoutes], name: &str, class: ToolClass) -> Route {
        let names = [name.to_string()];
        let subject = Subject { names: &names, class, clients: &["cursor"], arguments: &json!({}), request: None };
        route(layers.iter(), &subject)
    }

    #[test]
    fn approvers_parse_and_bad_ones_are_named() {
        assert_eq!(Approver::parse("self").unwrap(), Approver::Myself);
        assert_eq!(Approver::parse("Alice@Example.com").unwrap(), Approver::Person("alice@example.com".into()));
        assert_eq!(Approver::parse("group:it-approvers").unwrap(), Approver::Group("it-approvers".into()));
        for bad in ["", "bob", "a@b", "group:", "a b@c.d", "@x.y", "x@@y.z"] {
            assert!(Approver::parse(bad).is_err(), "{bad}");
        }
        let err = compile(Layer::User, &[entry("class:write", "self")]).map(|_| ());
        assert!(err.is_ok());
        let mut sod = entry("class:write", "self");
        sod.self_approval = false;
        let err = compile(Layer::Managed, &[entry("class:write", "owner"), sod]).err().unwrap();
        assert_eq!(err.0, 1);
        assert!(err.1.to_string().contains("needs an approver other than `self`"), "{}", err.1);
        assert!(compile(Layer::User, &[entry("mcp__(", "owner")]).is_err());
    }

    #[test]
    fn managed_routes_hold_over_the_users_and_the_default_is_self() {
        let managed = compile(Layer::Managed, &[entry("mcp__github__*", "group:it")]).unwrap();
        let user =
            compile(Layer::User, &[entry("mcp__github__*", "self"), entry("class:write", "bob@example.com")]).unwrap();
        let layers = [managed, user];
        let r = routed(&layers, "mcp__github__create_issue", ToolClass::Write);
        assert_eq!((r.approver, r.layer), (Approver::Group("it".into()), Layer::Managed));
        let r = routed(&layers, "mcp__fs__write_file", ToolClass::Write);
        assert_eq!(r.approver, Approver::Person("bob@example.com".into()), "the user may route what managed does not");
        let r = routed(&layers, "mcp__fs__read_file", ToolClass::Read);
        assert_eq!(r, Route::default_route());
        assert!(r.is_local());
        assert!(r.who().starts_with("you"), "{}", r.who());
    }
}
