//! Who this gateway's records say acted. With a person the hub verified for this device
//! (their email in `hub.json`, kept from the hub's answer at enrollment, binding or the
//! sync's refresh), records name them with `user_verified = true`; on an enterprise
//! agent's host, `agent:NAME` with its owner; otherwise the OS account running the
//! gateway, marked unverified. `os_user` is always the OS account.
//!
//! An agent has no person at its keyboard: what policy would ask is denied here, saying
//! why, and while the hub has it suspended every call is denied, naming the reason.
//!
//! The file is the device's own and can be edited; the hub, not this module, is what
//! makes a verified name trustworthy: it refuses records naming anyone but the person or
//! agent it bound to this device. This module never calls the hub and never holds a
//! credential.

use countersign_audit::{Decision, Record};
use countersign_local::home::Home;
use countersign_policy::Verdict;
use countersign_sync::hub_sync::HubLink;

/// The OS user running the gateway.
pub fn os_user() -> String {
    for var in ["USER", "LOGNAME", "USERNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    #[cfg(unix)]
    {
        // SAFETY: getuid has no preconditions.
        return format!("uid:{}", unsafe { libc::getuid() });
    }
    #[allow(unreachable_code)]
    String::from("unknown")
}

/// An enterprise agent this host acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    pub owner: Option<String>,
    /// Why the hub suspended it, while it is.
    pub suspended: Option<String>,
}

/// Who acts through this gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// The verified email or `agent:NAME`, else the OS account.
    pub user: String,
    pub verified: bool,
    /// The OS account running the gateway.
    pub os_user: String,
    pub agent: Option<Agent>,
}

/// The rule an agent's `ask` is routed to its owner under, and its suspension's.
pub const UNATTENDED_RULE: &str = "agent-unattended";
pub const SUSPENDED_RULE: &str = "agent-suspended";

impl Who {
    /// From the hub's link in `home`, and the OS account.
    pub fn of(home: &Home) -> Who {
        let os_user = os_user();
        let link = HubLink::load(home);
        if let Some(link) = link.as_ref().filter(|l| l.agent.as_deref().is_some_and(|a| !a.is_empty())) {
            let name = link.agent.clone().unwrap_or_default();
            return Who {
                user: format!("agent:{name}"),
                verified: true,
                os_user,
                agent: Some(Agent { name, owner: link.owner.clone(), suspended: link.suspended.clone() }),
            };
        }
        match link.and_then(|l| l.user).filter(|u| !u.trim().is_empty()) {
            Some(user) => Who { user, verified: true, os_user, agent: None },
            None => Who { user: os_user.clone(), verified: false, os_user, agent: None },
        }
    }

    /// `alice@example.com`, `agent:ci (owner alice@example.com)`, or `unverified: alice`
    /// (what `countersign whoami` prints).
    pub fn shown(&self) -> String {
        match (&self.agent, self.verified) {
            (Some(a), _) => format!("{} (owner {})", self.user, a.owner.as_deref().unwrap_or("unknown")),
            (None, true) => self.user.clone(),
            (None, false) => format!("unverified: {}", self.user),
        }
    }

    /// Puts this identity on a record.
    pub fn stamp(&self, record: &mut Record) {
        record.user = self.user.clone();
        record.user_verified = Some(self.verified);
        record.os_user = Some(self.os_user.clone());
        record.owner = self.agent.as_ref().and_then(|a| a.owner.clone());
    }

    /// What an agent's host does with the policy's verdict: nothing runs while the agent is
    /// suspended, and what would ask the person at the keyboard asks the agent's owner
    /// instead (no one is at an agent's keyboard), through the hub.
    pub fn overrule(&self, verdict: &mut Verdict) {
        let Some(agent) = &self.agent else { return };
        if let Some(why) = &agent.suspended {
            verdict.decision = Decision::Deny;
            verdict.rule = SUSPENDED_RULE.into();
            verdict.reason = format!("the agent `{}` is suspended by the hub: {why}", agent.name);
            verdict.grant = None;
        } else if verdict.decision == Decision::Ask {
            let route = verdict.route.get_or_insert_with(countersign_policy::Route::default_route);
            if route.is_local() {
                route.approver = countersign_policy::Approver::Owner;
                route.fallback = countersign_policy::Fallback::Deny;
                route.rule = Some(UNATTENDED_RULE.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(user: Option<&str>, agent: Option<&str>, suspended: Option<&str>) -> HubLink {
        HubLink {
            url: "https://hub.example".into(),
            device_id: "d".into(),
            user: user.map(str::to_string),
            agent: agent.map(str::to_string),
            owner: agent.map(|_| "ana@example.com".to_string()),
            suspended: suspended.map(str::to_string),
        }
    }

    #[test]
    fn a_device_no_person_signed_in_for_is_its_os_account_unverified() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().to_path_buf()).unwrap();
        let who = Who::of(&home);
        assert!(!who.verified);
        assert_eq!(who.user, who.os_user);
        assert!(who.shown().starts_with("unverified: "));
        link(Some("alice@example.com"), None, None).save(&home).unwrap();
        let who = Who::of(&home);
        assert!(who.verified);
        assert_eq!(who.shown(), "alice@example.com");
        let mut r = Record::new(countersign_audit::RecordKind::Call, "x", "dev", Decision::Allow);
        who.stamp(&mut r);
        assert_eq!(
            (r.user.as_str(), r.user_verified, r.os_user.as_deref(), r.owner.as_deref()),
            ("alice@example.com", Some(true), Some(who.os_user.as_str()), None)
        );
    }

    #[test]
    fn an_agent_names_its_owner_and_never_waits_for_a_person() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().to_path_buf()).unwrap();
        link(Some("agent:ci"), Some("ci"), None).save(&home).unwrap();
        let who = Who::of(&home);
        assert_eq!((who.user.as_str(), who.verified), ("agent:ci", true));
        let mut r = Record::new(countersign_audit::RecordKind::Call, "x", "dev", Decision::Allow);
        who.stamp(&mut r);
        assert_eq!(r.owner.as_deref(), Some("ana@example.com"));
        let verdict = |decision| Verdict {
            decision,
            rule: "default:write".into(),
            reason: "a write".into(),
            layer: countersign_policy::Layer::Builtin,
            class: countersign_policy::ToolClass::Write,
            label: None,
            class_source: countersign_policy::ClassSource::Default,
            class_reason: String::new(),
            policy_version: "v".into(),
            grant: None,
            route: None,
        };
        let mut ask = verdict(Decision::Ask);
        who.overrule(&mut ask);
        let route = ask.route.clone().expect("an agent's ask is routed");
        assert_eq!((ask.decision, route.approver), (Decision::Ask, countersign_policy::Approver::Owner));
        assert_eq!(route.fallback, countersign_policy::Fallback::Deny, "no one here to fall back to");
        let mut allow = verdict(Decision::Allow);
        who.overrule(&mut allow);
        assert_eq!(allow.decision, Decision::Allow, "what policy allows runs");
        link(Some("agent:ci"), Some("ci"), Some("owner ana@example.com was deactivated")).save(&home).unwrap();
        let mut allow = verdict(Decision::Allow);
        Who::of(&home).overrule(&mut allow);
        assert_eq!((allow.decision, allow.rule.as_str()), (Decision::Deny, SUSPENDED_RULE));
        assert!(allow.reason.contains("deactivated"), "{}", allow.reason);
    }
}
