//! Keeps the local journal within the bounds managed policy sets (`[managed.audit]`):
//! records the hub acknowledged go after their retention, and first when room is needed.
//! When only unacknowledged records fill the journal, either the gateway fails closed
//! (calls refused until the hub acknowledges records; the default), or the oldest
//! unacknowledged records are dropped and a gap record says which. A device enrolled with
//! no hub has nothing that could acknowledge its records: its journal is the only copy and
//! rotates, oldest first, at the limit (the chain stays verifiable from the oldest record
//! kept), rather than refusing every call for ever. Either way it is audited: no record
//! ever disappears silently.

use crate::Host;
use countersign_audit::outbox::AsyncOutbox;
use countersign_local::home::Home;
use countersign_policy::WhenFull;
use std::sync::Weak;
use std::time::Duration;

/// How often the bounds are checked.
const EVERY: Duration = Duration::from_secs(2);

pub async fn run<H: Host>(gateway: Weak<H>, home: Home) {
    // One connection for the gateway's life (opened again after a failure).
    let mut outbox: Option<AsyncOutbox> = None;
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(shared) = gateway.upgrade() else { return };
        let bounds = shared.audit_bounds();
        let cutoff = (bounds.retention_days > 0).then(|| {
            let t = time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(bounds.retention_days));
            t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
        });
        let enrolled = crate::hub_sync::HubLink::load(&home).is_some();
        let drop_unsent = bounds.when_full == WhenFull::DropOldestWithGap || !enrolled;
        let opened = match outbox.take() {
            Some(o) => Ok(o),
            None => AsyncOutbox::open(home.journal_path()).await,
        };
        let pruned = match opened {
            Ok(o) => {
                let result = o.run(move |o| o.prune(bounds.max_records, cutoff.as_deref(), drop_unsent)).await;
                if result.is_ok() {
                    outbox = Some(o);
                }
                result
            }
            Err(e) => Err(e),
        };
        let report = match pruned {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("audit journal upkeep: {e}");
                continue;
            }
        };
        if let Some((n, first, last)) = report.dropped_unsent {
            if enrolled {
                let reason = format!(
                    "{n} record(s) the hub never acknowledged (seq {first} to {last}) were dropped: the journal \
                     reached its managed limit of {} records",
                    bounds.max_records
                );
                tracing::warn!("{reason}");
                shared.record_event(countersign_audit::Decision::Deny, "audit-gap", reason);
            } else {
                let reason = format!(
                    "the journal reached its limit of {} records and, with no hub enrolled to keep them, rotated: \
                     the oldest {n} (seq {first} to {last}) were removed",
                    bounds.max_records
                );
                tracing::info!("{reason}");
                shared.record_event(countersign_audit::Decision::Allow, "audit-rotated", reason);
            }
        }
        let full = report.full && !drop_unsent;
        if full != shared.journal().is_full() {
            shared.journal().set_full(full);
            let (decision, reason) = if full {
                (
                    countersign_audit::Decision::Deny,
                    format!(
                        "the audit journal holds {} records the hub has not acknowledged (managed limit {}): tool \
                         calls are refused until the hub is reachable",
                        report.unsent, bounds.max_records
                    ),
                )
            } else {
                (
                    countersign_audit::Decision::Allow,
                    "the hub acknowledged records: the audit journal has room again".to_string(),
                )
            };
            if full {
                tracing::error!("{reason}");
            } else {
                tracing::info!("{reason}");
            }
            shared.record_event(decision, "audit-full", reason);
        }
    }
}
