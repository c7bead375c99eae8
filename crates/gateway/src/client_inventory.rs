//! Records which AI clients on this machine use which MCP servers, and whether through
//! Countersign, in the audit journal whenever that changes (so IT sees shadow servers at
//! the hub). Reads the clients' files only; never changes them. Server environments and
//! headers are not part of the inventory, so no credential can be recorded.

use crate::shared::Shared;
use countersign_audit::RecordKind;
use std::sync::Weak;
use std::time::Duration;

/// How often the clients' files are looked at.
const EVERY: Duration = Duration::from_secs(60);

pub async fn run(gateway: Weak<Shared>) {
    // A machine with no AI client configured has nothing to report.
    let mut last: Option<String> = Some(serde_json::Value::Array(Vec::new()).to_string());
    loop {
        let Some(shared) = gateway.upgrade() else { return };
        let listen = shared.config.gateway.listen;
        let found = tokio::task::spawn_blocking(move || {
            countersign_clients::Env::from_process().map(|env| countersign_clients::inventory(&env, &[], Some(listen)))
        })
        .await
        .ok()
        .flatten();
        if let Some(reports) = found {
            let value = serde_json::to_value(&reports).unwrap_or_default();
            let text = value.to_string();
            if last.as_deref() != Some(text.as_str()) {
                let shadow: Vec<String> = reports
                    .iter()
                    .flat_map(|r| {
                        r.servers
                            .iter()
                            .filter(|s| s.route == countersign_clients::Route::Shadow && s.server.enabled)
                            .map(move |s| format!("{} `{}` ({})", r.client_name, s.server.name, r.file))
                    })
                    .collect();
                let mut record = shared.record(RecordKind::Policy, if shadow.is_empty() { "allow" } else { "ask" });
                record.rule = Some("client-inventory".into());
                record.reason = Some(if shadow.is_empty() {
                    format!("{} client configuration(s); every server runs through Countersign", reports.len())
                } else {
                    format!("servers configured around Countersign (shadow): {}", shadow.join(", "))
                });
                record.arguments = Some(shared.redactor.redact(&serde_json::json!({ "clients": value })));
                record.policy_version = Some(shared.policy.load().version().to_string());
                if let Err(e) = shared.journal.commit(record).await {
                    tracing::warn!("client inventory not recorded: {e}");
                } else {
                    if !shadow.is_empty() {
                        tracing::warn!("AI clients use servers around Countersign: {}", shadow.join(", "));
                    }
                    last = Some(text);
                }
            }
        }
        drop(shared);
        tokio::time::sleep(EVERY).await;
    }
}
