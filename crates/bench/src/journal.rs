//! What a benchmark run left in the gateway's journal, read from `countersign audit
//! export --format jsonl`: records counted by kind, calls by tool, and the check that the
//! journal holds exactly one call record per call the harness made. A benchmark whose
//! calls were not all recorded measured a gateway that skipped its work; it must fail,
//! never print figures as if it had not.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The journal's records, counted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Records by kind (`call`, `policy`, `rejected`).
    pub by_kind: BTreeMap<String, usize>,
    /// Call records by tool (or by method, for a governed request that names no tool).
    pub calls_by_tool: BTreeMap<String, usize>,
    /// Call records by decision.
    pub calls_by_decision: BTreeMap<String, usize>,
    /// Policy records by what they say (their label, or their reason's first words).
    pub policy_events: BTreeMap<String, usize>,
}

impl Census {
    /// Counts the records of an exported journal (one JSON record a line).
    pub fn of(jsonl: &str) -> Result<Self> {
        let mut census = Census::default();
        for (n, line) in jsonl.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let record: Value = serde_json::from_str(line).with_context(|| format!("journal line {}", n + 1))?;
            let text = |field: &str| record.get(field).and_then(Value::as_str).map(str::to_string);
            let kind = text("kind").with_context(|| format!("journal line {}: no kind", n + 1))?;
            *census.by_kind.entry(kind.clone()).or_default() += 1;
            match kind.as_str() {
                "call" => {
                    let tool = text("tool").or_else(|| text("method")).unwrap_or_else(|| "(none)".into());
                    *census.calls_by_tool.entry(tool).or_default() += 1;
                    *census.calls_by_decision.entry(text("decision").unwrap_or_default()).or_default() += 1;
                }
                "policy" => {
                    let what = text("label")
                        .or_else(|| text("reason").map(|r| r.split_whitespace().take(4).collect::<Vec<_>>().join(" ")))
                        .unwrap_or_else(|| "(unlabelled)".into());
                    *census.policy_events.entry(what).or_default() += 1;
                }
                _ => {}
            }
        }
        Ok(census)
    }

    fn count(&self, kind: &str) -> usize {
        self.by_kind.get(kind).copied().unwrap_or(0)
    }

    /// Fails unless the journal holds exactly `made` call records, every one of them an
    /// allowed call of `tool`, and no rejected request: the harness made `made` calls of
    /// `tool` that the policy allows and nothing else that is recorded as a call.
    pub fn expect_one_record_per_call(&self, tool: &str, made: usize) -> Result<()> {
        let calls = self.count("call");
        let of_tool = self.calls_by_tool.get(tool).copied().unwrap_or(0);
        let allowed = self.calls_by_decision.get("allow").copied().unwrap_or(0);
        if calls != made || of_tool != made || allowed != made {
            bail!(
                "the journal does not hold one record per call: {made} calls of `{tool}` made, {calls} call \
                 records ({of_tool} of `{tool}`, {allowed} allowed)\n{self}"
            );
        }
        if self.count("rejected") != 0 {
            bail!("the journal holds rejected requests the harness never made\n{self}");
        }
        Ok(())
    }
}

impl fmt::Display for Census {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list =
            |m: &BTreeMap<String, usize>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        write!(f, "journal records by kind: {}", list(&self.by_kind))?;
        write!(f, "; calls by tool: {}", list(&self.calls_by_tool))?;
        write!(f, "; policy records: {}", list(&self.policy_events))
    }
}

#[cfg(test)]
mod tests {
    use super::Census;

    const START: &str = r#"{"kind":"policy","decision":"allow","label":"gateway started"}"#;

    fn call(tool: &str, decision: &str) -> String {
        format!(r#"{{"kind":"call","tool":"{tool}","decision":"{decision}"}}"#)
    }

    fn journal(lines: &[String]) -> String {
        lines.join("\n")
    }

    #[test]
    fn one_record_per_call_passes_and_the_start_record_is_counted_apart() {
        let text = journal(&[START.into(), call("echo", "allow"), call("echo", "allow")]);
        let census = Census::of(&text).unwrap();
        census.expect_one_record_per_call("echo", 2).unwrap();
        assert_eq!(census.by_kind["policy"], 1);
        assert_eq!(census.policy_events["gateway started"], 1);
    }

    #[test]
    fn a_missing_or_extra_record_fails() {
        let text = journal(&[START.into(), call("echo", "allow"), call("echo", "allow")]);
        let census = Census::of(&text).unwrap();
        let short = census.expect_one_record_per_call("echo", 3).unwrap_err().to_string();
        assert!(short.contains("3 calls of `echo` made, 2 call records"), "{short}");
        assert!(census.expect_one_record_per_call("echo", 1).is_err());
    }

    #[test]
    fn a_call_of_another_tool_or_a_denial_or_a_rejection_fails() {
        let other = Census::of(&journal(&[call("echo", "allow"), call("noop", "allow")])).unwrap();
        assert!(other.expect_one_record_per_call("echo", 2).is_err());
        let denied = Census::of(&journal(&[call("echo", "allow"), call("echo", "deny")])).unwrap();
        assert!(denied.expect_one_record_per_call("echo", 2).is_err());
        let rejected =
            Census::of(&journal(&[call("echo", "allow"), r#"{"kind":"rejected","decision":"deny"}"#.into()])).unwrap();
        assert!(rejected.expect_one_record_per_call("echo", 1).is_err());
    }

    #[test]
    fn a_line_that_is_not_a_record_is_an_error() {
        assert!(Census::of("not json").is_err());
        assert!(Census::of(r#"{"tool":"echo"}"#).is_err());
    }
}
