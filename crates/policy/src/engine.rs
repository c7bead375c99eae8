//! The decision: deny rules, then grants, then ask rules, then allow rules, then the
//! default from the tool's hints. Anything the engine cannot vouch for asks or denies;
//! nothing unknown is ever allowed.

use crate::canonical::canonical_json;
use crate::decision::{Decision, Verdict};
use crate::input::CallInput;
use crate::rule::{qualified_name, RuleError, RuleList};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Rule lists as written in configuration (`[policy] allow, ask, deny`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRules {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub ask: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// A compiled policy. Cheap to share; decisions take `&self`.
#[derive(Debug, Clone)]
pub struct Policy {
    deny: RuleList,
    ask: RuleList,
    allow: RuleList,
    version: String,
}

/// Which list a rule error came from, so configuration errors can name the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("policy.{list}[{index}]: {error}")]
pub struct PolicyError {
    pub list: &'static str,
    pub index: usize,
    pub error: RuleError,
}

impl Policy {
    pub fn compile(rules: &PolicyRules) -> Result<Self, PolicyError> {
        let compile = |list: &'static str, texts: &[String], ci: bool| {
            for (index, text) in texts.iter().enumerate() {
                crate::rule::Rule::parse(text).map_err(|error| PolicyError { list, index, error })?;
            }
            RuleList::compile(texts, ci).map_err(|error| PolicyError { list, index: 0, error })
        };
        let version = {
            let doc = serde_json::to_value(rules).unwrap_or_default();
            let digest = Sha256::digest(canonical_json(&doc).as_bytes());
            format!("sha256:{}", &hex::encode(digest)[..16])
        };
        Ok(Policy {
            deny: compile("deny", &rules.deny, true)?,
            ask: compile("ask", &rules.ask, true)?,
            allow: compile("allow", &rules.allow, false)?,
            version,
        })
    }

    /// The version recorded on every audit record: a digest of the rules in force.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn decide(&self, call: &CallInput<'_>) -> Verdict {
        let name = qualified_name(call.server, call.tool);
        let verdict = |decision, rule: String, reason: String| Verdict {
            decision,
            rule,
            reason,
            policy_version: self.version.clone(),
        };
        if let Some(rule) = self.deny.first_match(&name) {
            return verdict(
                Decision::Deny,
                format!("deny:{}", rule.text()),
                format!("`{name}` is denied by the policy rule `{}`", rule.text()),
            );
        }
        if let Some(grant) = call.grants.iter().find(|g| g.covers(call)) {
            return verdict(Decision::Allow, format!("grant:{}", grant.id), format!("`{name}` was approved earlier"));
        }
        if let Some(rule) = self.ask.first_match(&name) {
            return verdict(
                Decision::Ask,
                format!("ask:{}", rule.text()),
                format!("`{name}` needs approval under the policy rule `{}`", rule.text()),
            );
        }
        if let Some(rule) = self.allow.first_match(&name) {
            return verdict(
                Decision::Allow,
                format!("allow:{}", rule.text()),
                format!("`{name}` is allowed by the policy rule `{}`", rule.text()),
            );
        }
        let Some(hints) = call.hints else {
            return verdict(
                Decision::Ask,
                "default:unknown-tool".into(),
                format!("`{name}` was never listed by its server, so it needs approval"),
            );
        };
        if hints.destructive == Some(true) && hints.read_only != Some(true) {
            return verdict(
                Decision::Deny,
                "default:destructive".into(),
                format!("`{name}` is marked destructive; destructive tools are denied unless a rule allows them"),
            );
        }
        if hints.read_only == Some(true) {
            if call.server_trusted {
                return verdict(Decision::Allow, "default:read-only".into(), format!("`{name}` only reads"));
            }
            return verdict(
                Decision::Ask,
                "default:untrusted-hint".into(),
                format!("`{name}` says it only reads, but its server is not trusted, so it needs approval"),
            );
        }
        verdict(Decision::Ask, "default:write".into(), format!("`{name}` may change data, so it needs approval"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Grant, GrantScope, Identity, ToolHints};
    use serde_json::json;

    fn rules(allow: &[&str], ask: &[&str], deny: &[&str]) -> Policy {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Policy::compile(&PolicyRules { allow: v(allow), ask: v(ask), deny: v(deny) }).unwrap()
    }

    fn decide(policy: &Policy, tool: &str, hints: Option<ToolHints>, trusted: bool, grants: &[Grant]) -> Verdict {
        let id = Identity { client_token: "cursor".into(), ..Default::default() };
        let args = json!({"path": "/tmp/a"});
        policy.decide(&CallInput {
            identity: &id,
            server: "fs",
            tool,
            hints: hints.as_ref(),
            server_trusted: trusted,
            arguments: &args,
            grants,
            now_ms: 1_000,
        })
    }

    const READ: ToolHints = ToolHints { read_only: Some(true), destructive: None, idempotent: None, open_world: None };
    const DESTRUCTIVE: ToolHints =
        ToolHints { read_only: Some(false), destructive: Some(true), idempotent: None, open_world: None };
    const PLAIN: ToolHints = ToolHints { read_only: None, destructive: None, idempotent: None, open_world: None };

    #[test]
    fn deny_beats_ask_and_allow() {
        let p = rules(&["mcp__fs"], &["mcp__fs__write_file"], &["mcp__fs__write*"]);
        let v = decide(&p, "write_file", Some(READ), true, &[]);
        assert_eq!(v.decision, Decision::Deny);
        assert_eq!(v.rule, "deny:mcp__fs__write*");
    }

    #[test]
    fn ask_beats_allow() {
        let p = rules(&["mcp__fs"], &["mcp__fs__write_file"], &[]);
        assert_eq!(decide(&p, "write_file", Some(PLAIN), true, &[]).decision, Decision::Ask);
        assert_eq!(decide(&p, "read_file", Some(PLAIN), true, &[]).decision, Decision::Allow);
    }

    #[test]
    fn defaults_follow_hints_and_trust() {
        let p = rules(&[], &[], &[]);
        assert_eq!(decide(&p, "read_file", Some(READ), true, &[]).rule, "default:read-only");
        assert_eq!(decide(&p, "read_file", Some(READ), false, &[]).decision, Decision::Ask);
        assert_eq!(decide(&p, "rm", Some(DESTRUCTIVE), true, &[]).decision, Decision::Deny);
        assert_eq!(decide(&p, "write", Some(PLAIN), true, &[]).decision, Decision::Ask);
        assert_eq!(decide(&p, "never_listed", None, true, &[]).rule, "default:unknown-tool");
    }

    #[test]
    fn untrusted_read_only_hint_on_destructive_tool_is_not_allowed() {
        // sec_11: an untrusted server marking delete_all read-only gains nothing.
        let p = rules(&[], &[], &["mcp__*__delete*"]);
        assert_eq!(decide(&p, "delete_all", Some(READ), false, &[]).decision, Decision::Deny);
    }

    #[test]
    fn grants_allow_only_what_they_cover() {
        let p = rules(&[], &["mcp__fs__write_file"], &["mcp__fs__delete*"]);
        let once = Grant {
            id: "g1".into(),
            client_token: "cursor".into(),
            server: "fs".into(),
            tool: "write_file".into(),
            scope: GrantScope::Once { args_hash: crate::args_hash(&json!({"path": "/tmp/a"})) },
        };
        assert_eq!(decide(&p, "write_file", Some(PLAIN), true, &[once.clone()]).rule, "grant:g1");
        let other_args = Grant { scope: GrantScope::Once { args_hash: "00".into() }, ..once.clone() };
        assert_eq!(decide(&p, "write_file", Some(PLAIN), true, &[other_args]).decision, Decision::Ask);
        let expired = Grant { scope: GrantScope::Until { expires_ms: 1_000 }, ..once.clone() };
        assert_eq!(decide(&p, "write_file", Some(PLAIN), true, &[expired]).decision, Decision::Ask);
        let delete = Grant { tool: "delete_file".into(), scope: GrantScope::Until { expires_ms: 9_999 }, ..once };
        assert_eq!(decide(&p, "delete_file", Some(PLAIN), true, &[delete]).decision, Decision::Deny);
    }

    #[test]
    fn version_changes_with_the_rules() {
        assert_eq!(rules(&[], &[], &[]).version(), rules(&[], &[], &[]).version());
        assert_ne!(rules(&[], &[], &[]).version(), rules(&["mcp__fs"], &[], &[]).version());
    }

    #[test]
    fn a_bad_rule_names_its_list_and_index() {
        let err = Policy::compile(&PolicyRules { deny: vec!["mcp__a".into(), "oops".into()], ..Default::default() })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "policy.deny[1]: rule `oops` must start with `mcp__` (for example `mcp__filesystem__write_file`)"
        );
    }
}
