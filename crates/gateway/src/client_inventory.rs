//! Records which AI clients on this machine use which MCP servers, and whether through
//! Countersign, in the audit journal whenever that changes (so IT sees shadow servers at
//! the hub). When managed policy requires routing, shadow servers make the record a
//! `deny` under the rule `require-routing`, which the hub raises as an alert and the app
//! shows as a tray warning; a direct server that is not on the allowed list does too.
//! Reads the clients' files only; never changes them. Server environments and headers are
//! not part of the inventory, so no credential can be recorded.

use crate::shared::Shared;
use countersign_audit::RecordKind;
use countersign_clients::read::{Server, Transport};
use countersign_clients::{FileReport, Route};
use countersign_policy::{Policy, ServerOrigin};
use std::sync::Weak;
use std::time::Duration;

/// Marks the direct servers the policy's allowed lists leave out.
pub fn mark_blocked(reports: &mut [FileReport], policy: &Policy) {
    countersign_clients::mark_blocked(reports, |s: &Server| {
        let origin = match &s.transport {
            Transport::Stdio { command, args } => {
                ServerOrigin::Command { command: command.clone(), args: args.clone() }
            }
            Transport::Remote { url } => ServerOrigin::Url(url.clone()),
        };
        policy.server_blocked(&s.name, &origin).is_some()
    });
}

/// `Client `name` (file)` for each enabled server whose route passes `which`.
fn around(reports: &[FileReport], which: impl Fn(Route) -> bool) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| {
            r.servers
                .iter()
                .filter(|s| which(s.route) && s.server.enabled)
                .map(move |s| format!("{} `{}` ({})", r.client_name, s.server.name, r.file))
        })
        .collect()
}

/// How often the clients' files are looked at.
const EVERY: Duration = Duration::from_secs(60);

pub async fn run(gateway: Weak<Shared>) {
    // A machine with no AI client configured has nothing to report.
    let mut last: Option<String> = Some(format!("allow {}", serde_json::Value::Array(Vec::new())));
    loop {
        let Some(shared) = gateway.upgrade() else { return };
        // The port actually bound (the config may say 0).
        let listen = shared.home.read_runtime().map(|r| r.listen).unwrap_or(shared.config.gateway.listen);
        let policy = shared.policy.load_full();
        let found = tokio::task::spawn_blocking(move || {
            countersign_clients::Env::from_process().map(|env| {
                let mut reports = countersign_clients::inventory(&env, &[], Some(listen));
                mark_blocked(&mut reports, &policy);
                reports
            })
        })
        .await
        .ok()
        .flatten();
        if let Some(reports) = found {
            let value = serde_json::to_value(&reports).unwrap_or_default();
            let shadow = around(&reports, |r| r != Route::Routed);
            let blocked = around(&reports, |r| r == Route::Blocked);
            let alert = !blocked.is_empty() || (!shadow.is_empty() && shared.policy.load().require_routing());
            let decision = match (alert, shadow.is_empty()) {
                (true, _) => countersign_audit::Decision::Deny,
                (false, true) => countersign_audit::Decision::Allow,
                (false, false) => countersign_audit::Decision::Ask,
            };
            let mut reason = if shadow.is_empty() {
                format!("{} client configuration(s); every server runs through Countersign", reports.len())
            } else {
                format!("servers configured around Countersign (shadow): {}", shadow.join(", "))
            };
            if !blocked.is_empty() {
                reason.push_str(&format!("; not on the allowed list: {}", blocked.join(", ")));
            }
            if let Ok(mut warning) = shared.routing_warning.lock() {
                *warning = alert.then(|| reason.clone());
            }
            // A new record when the inventory or what policy makes of it changes.
            let key = format!("{} {value}", decision.as_str());
            if last.as_deref() != Some(key.as_str()) {
                let mut record = shared.record(RecordKind::Policy, decision);
                record.rule =
                    Some(if alert { countersign_audit::wire::REQUIRE_ROUTING_RULE } else { "client-inventory" }.into());
                record.reason = Some(reason.clone());
                record.arguments = Some(shared.redactor.redact(&serde_json::json!({ "clients": value })));
                record.policy_version = Some(shared.policy.load().version().to_string());
                if let Err(e) = shared.journal.commit(record).await {
                    tracing::warn!("client inventory not recorded: {e}");
                } else {
                    if !shadow.is_empty() {
                        tracing::warn!("AI clients use servers around Countersign: {reason}");
                    }
                    last = Some(key);
                }
            }
        }
        drop(shared);
        tokio::time::sleep(EVERY).await;
    }
}
