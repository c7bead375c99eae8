//! Impact preview: before a policy is published, the recorded calls of the last days are
//! decided again under the draft and under the published policy, each as the bundle
//! layer alone (the part the hub changes; laptops add their users' own layers), and every
//! call whose decision would change is counted by change (allow → ask, ask → deny…), by
//! tool and by person, with a few examples. A tool's class is the one its device
//! recorded, unless the policy itself classifies the tool.
//!
//! Must never: publish or write anything, or put a call's arguments in the report.

use countersign_policy::{
    ClassSource, Classification, Decision, Gate, Identity, Policy, ServerInfo, ServerOrigin, Standing, ToolClass,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One recorded call, as the preview reads it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub id: String,
    pub time: String,
    pub user: String,
    pub client: String,
    pub server: String,
    pub tool: String,
    pub class: Option<ToolClass>,
    /// As recorded (redacted where records are).
    pub arguments: Value,
}

/// How many calls went from one decision to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub from: &'static str,
    pub to: &'static str,
    pub calls: usize,
}

/// The changes for one tool (`server.tool`) or one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    pub name: String,
    pub changes: Vec<Change>,
}

/// One call that would change, named by its record (no arguments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    pub id: String,
    pub time: String,
    pub user: String,
    pub tool: String,
    pub from: &'static str,
    pub to: &'static str,
    /// The draft's rule that decides it now.
    pub rule: String,
}

/// What publishing the draft would have changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Impact {
    pub calls: usize,
    pub changed: usize,
    pub by_change: Vec<Change>,
    pub by_tool: Vec<Changed>,
    pub by_person: Vec<Changed>,
    pub examples: Vec<Example>,
}

/// The most examples a report carries.
pub const EXAMPLES: usize = 20;

fn word(d: Decision) -> &'static str {
    d.as_str()
}

/// The decision `policy` gives `call`, and the rule it gives it by.
pub fn decide(policy: &Policy, call: &Recorded) -> (Decision, String) {
    let info = ServerInfo {
        name: call.server.clone(),
        origin: ServerOrigin::Url(String::new()),
        trusted: false,
        catalog: None,
        scope: None,
    };
    let identity = Identity { client_token: call.client.clone(), ..Default::default() };
    let by_policy = policy.classify(&info, &call.tool, None);
    let class = match (by_policy.source, call.class) {
        (ClassSource::Managed, _) | (_, None) => by_policy,
        (_, Some(recorded)) => Classification::new(recorded, ClassSource::Catalog, "as its device recorded it"),
    };
    let input = countersign_policy::CallInput {
        identity: &identity,
        server: &info,
        tool: &call.tool,
        def: None,
        arguments: &call.arguments,
        resolved: None,
        grants: None,
        gate: Gate { paused: false, standing: Standing::Listed },
        now_ms: 0,
    };
    let verdict = policy.decide_classified(&input, &class);
    (verdict.decision, verdict.rule)
}

fn tally(map: &mut BTreeMap<(&'static str, &'static str), usize>, from: &'static str, to: &'static str) {
    *map.entry((from, to)).or_default() += 1;
}

fn changes(map: BTreeMap<(&'static str, &'static str), usize>) -> Vec<Change> {
    let mut out: Vec<Change> = map.into_iter().map(|((from, to), calls)| Change { from, to, calls }).collect();
    out.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.from.cmp(b.from)).then(a.to.cmp(b.to)));
    out
}

fn grouped(map: BTreeMap<String, BTreeMap<(&'static str, &'static str), usize>>) -> Vec<Changed> {
    let mut out: Vec<Changed> = map.into_iter().map(|(name, m)| Changed { name, changes: changes(m) }).collect();
    let total = |c: &Changed| c.changes.iter().map(|x| x.calls).sum::<usize>();
    out.sort_by(|a, b| total(b).cmp(&total(a)).then(a.name.cmp(&b.name)));
    out
}

/// The changes counted so far; calls are added a batch at a time, so a week of a large
/// fleet is never held in memory at once.
#[derive(Debug, Default)]
pub struct Tally {
    calls: usize,
    changed: usize,
    by_change: BTreeMap<(&'static str, &'static str), usize>,
    by_tool: BTreeMap<String, BTreeMap<(&'static str, &'static str), usize>>,
    by_person: BTreeMap<String, BTreeMap<(&'static str, &'static str), usize>>,
    examples: Vec<Example>,
}

impl Tally {
    /// Decides `calls` under `before` (the published policy) and `after` (the draft).
    pub fn add(&mut self, before: &Policy, after: &Policy, calls: &[Recorded]) {
        for call in calls {
            self.calls += 1;
            let (was, _) = decide(before, call);
            let (now, rule) = decide(after, call);
            if was == now {
                continue;
            }
            self.changed += 1;
            let (from, to) = (word(was), word(now));
            tally(&mut self.by_change, from, to);
            tally(self.by_tool.entry(format!("{}.{}", call.server, call.tool)).or_default(), from, to);
            tally(self.by_person.entry(call.user.clone()).or_default(), from, to);
            if self.examples.len() < EXAMPLES {
                self.examples.push(Example {
                    id: call.id.clone(),
                    time: call.time.clone(),
                    user: call.user.clone(),
                    tool: format!("{}.{}", call.server, call.tool),
                    from,
                    to,
                    rule,
                });
            }
        }
    }

    pub fn report(self) -> Impact {
        Impact {
            calls: self.calls,
            changed: self.changed,
            by_change: changes(self.by_change),
            by_tool: grouped(self.by_tool),
            by_person: grouped(self.by_person),
            examples: self.examples,
        }
    }
}

/// Replays `calls` under `before` (the published policy) and `after` (the draft).
pub fn impact(before: &Policy, after: &Policy, calls: &[Recorded]) -> Impact {
    let mut tally = Tally::default();
    tally.add(before, after, calls);
    tally.report()
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_policy::{Layers, PolicySettings};
    use serde_json::json;

    fn bundle(text: &str) -> Policy {
        let settings: PolicySettings = toml::from_str(text).unwrap();
        Policy::from_layers(Layers { bundle: Some((settings, 1)), ..Default::default() }).unwrap()
    }

    fn call(user: &str, server: &str, tool: &str, class: ToolClass, arguments: Value) -> Recorded {
        Recorded {
            id: format!("{user}-{tool}"),
            time: "2026-12-01T10:00:00Z".into(),
            user: user.into(),
            client: "cursor".into(),
            server: server.into(),
            tool: tool.into(),
            class: Some(class),
            arguments,
        }
    }

    #[test]
    fn a_known_draft_changes_exactly_the_calls_it_names() {
        let before = bundle("");
        let after = bundle("deny = [\"mcp__github__delete_repo\"]\nallow = [\"mcp__fs__write_file(path=/work/**)\"]\n");
        let calls = [
            call("ana@example.com", "fs", "read_file", ToolClass::Read, json!({"path": "/work/a"})),
            call("ana@example.com", "fs", "write_file", ToolClass::Write, json!({"path": "/work/a"})),
            call("pia@example.com", "fs", "write_file", ToolClass::Write, json!({"path": "/etc/passwd"})),
            call("pia@example.com", "github", "delete_repo", ToolClass::Destructive, json!({"repo": "x"})),
            call("pia@example.com", "github", "create_issue", ToolClass::Write, json!({})),
        ];
        let report = impact(&before, &after, &calls);
        assert_eq!(report.calls, 5);
        assert_eq!(report.changed, 1, "{report:#?}");
        assert_eq!(report.by_change, vec![Change { from: "ask", to: "allow", calls: 1 }]);
        assert_eq!(report.by_tool[0].name, "fs.write_file");
        assert_eq!(report.by_person[0].name, "ana@example.com");
        assert_eq!(report.examples[0].id, "ana@example.com-write_file");
        assert!(report.examples[0].rule.contains("write_file"), "{}", report.examples[0].rule);
        // Denying a write tool: every such call goes ask → deny, by person.
        let stricter = bundle("deny = [\"mcp__fs__write_file\"]\n");
        let report = impact(&before, &stricter, &calls);
        assert_eq!(report.by_change, vec![Change { from: "ask", to: "deny", calls: 2 }]);
        assert_eq!(report.by_person.len(), 2);
        // The same policy changes nothing.
        assert_eq!(impact(&after, &after, &calls).changed, 0);
    }

    #[test]
    fn the_policy_s_own_classification_wins_over_the_recorded_class() {
        let before = bundle("");
        let after = bundle("[classify]\n\"mcp__fs__read_file\" = \"destructive\"\n");
        let calls = [call("ana@example.com", "fs", "read_file", ToolClass::Read, json!({"path": "/a"}))];
        let report = impact(&before, &after, &calls);
        assert_eq!(report.by_change, vec![Change { from: "allow", to: "deny", calls: 1 }], "{report:#?}");
    }
}
