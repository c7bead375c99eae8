//! `countersign audit verify`: the journal's chain, its outcomes and the hub's signed
//! checkpoints checked on this laptop, then (when enrolled and not `--offline`) the
//! journal compared with the newest checkpoint the hub itself holds, which nobody with
//! only this disk can change. Exit 0: all held; 1: broken (the first break named); 3:
//! the local checks held but the hub's checkpoint could not be compared. Reads only;
//! never writes the journal.

use anyhow::{bail, Result};
use countersign_audit::{ChainReport, JournalError};
use countersign_local::Home;

/// What the comparison with the hub found.
enum HubCheck {
    Matches(i64),
    NoCheckpoint,
    NotEnrolled,
    Unreachable(String),
    Skipped,
}

pub async fn verify(home: &Home, json: bool, offline: bool) -> Result<i32> {
    let path = home.journal_path();
    if !path.exists() {
        bail!("no audit journal at {} yet", path.display());
    }
    let reader = countersign_audit::Journal::open_read_only(&path).await?;
    let key = countersign_gateway::policy_layers::hub_public_key();
    let result = match reader.verify_with(key.as_deref()).await {
        Ok(report) => match compare_with_hub(home, &reader, key.as_deref(), offline).await {
            Ok(hub) => Ok((report, hub)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match result {
        Ok((report, hub)) if json => {
            let hub = match hub {
                HubCheck::Matches(seq) => serde_json::json!({"matches": true, "seq": seq}),
                HubCheck::NoCheckpoint => {
                    serde_json::json!({"matches": null, "why": "the hub holds no checkpoint yet"})
                }
                HubCheck::NotEnrolled => serde_json::json!({"matches": null, "why": "not enrolled"}),
                HubCheck::Unreachable(why) => serde_json::json!({"matches": null, "why": why}),
                HubCheck::Skipped => serde_json::json!({"matches": null, "why": "--offline"}),
            };
            println!("{}", serde_json::json!({"ok": true, "report": report, "hub": hub}));
            Ok(0)
        }
        Ok((report, hub)) => {
            println!("{}: {}", path.display(), summary(&report));
            match hub {
                HubCheck::Matches(seq) => println!("  the hub's newest checkpoint (record {seq}) matches this journal"),
                HubCheck::NoCheckpoint if report.checkpoints > 0 => {
                    // The hub this device is enrolled with signed none, yet the journal
                    // holds some: the link points elsewhere, or the hub lost them.
                    eprintln!(
                        "countersign: the hub holds no checkpoint for this device, but this journal holds {}: not \
                         compared (is hub.json pointing at the hub that signed them?)",
                        report.checkpoints
                    );
                    return Ok(3);
                }
                HubCheck::NoCheckpoint => println!("  the hub holds no checkpoint for this device yet"),
                HubCheck::NotEnrolled => {}
                HubCheck::Unreachable(why) => {
                    // Fails closed: what only the hub can vouch for was not checked.
                    eprintln!(
                        "countersign: not compared with the hub's checkpoint ({why}); the local checks passed. \
                         Run again when the hub is reachable, or with --offline for the local checks alone."
                    );
                    return Ok(3);
                }
                HubCheck::Skipped => {}
            }
            Ok(0)
        }
        Err(JournalError::Broken { seq, id, why }) => {
            if json {
                println!("{}", serde_json::json!({"ok": false, "seq": seq, "id": id, "why": why}));
            } else {
                eprintln!("countersign: {}: the chain is broken at record {seq} ({id}): {why}", path.display());
            }
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

fn summary(report: &ChainReport) -> String {
    let mut parts = vec![format!("the chain holds: {} record(s), {} outcome(s)", report.records, report.outcomes)];
    if report.unchained > 0 {
        parts.push(format!("{} older record(s) from before chaining", report.unchained));
    }
    if report.open > 0 {
        parts.push(format!("{} call(s) still open (in flight, or closed as unknown at the next start)", report.open));
    }
    parts.push(match (report.checkpoints, report.signatures_checked) {
        (0, _) => "no checkpoint from the hub yet".to_string(),
        (n, true) => format!("{n} checkpoint(s) from the hub, signatures checked"),
        (n, false) => {
            format!("{n} checkpoint(s) from the hub (signatures not checked: no managed policy names the hub's key)")
        }
    });
    format!("{}; head {}", parts.join(", "), report.head.as_deref().map(|h| &h[..16]).unwrap_or("(empty)"))
}

async fn compare_with_hub(
    home: &Home,
    reader: &countersign_audit::JournalReader,
    key: Option<&str>,
    offline: bool,
) -> Result<HubCheck, JournalError> {
    if offline {
        return Ok(HubCheck::Skipped);
    }
    if countersign_sync::hub_sync::HubLink::load(home).is_none() {
        return Ok(HubCheck::NotEnrolled);
    }
    match countersign_sync::hub_sync::hub_checkpoint(home).await {
        Ok(Some(checkpoint)) => {
            reader.check_against(&checkpoint, key).await?;
            Ok(HubCheck::Matches(checkpoint.seq))
        }
        Ok(None) => Ok(HubCheck::NoCheckpoint),
        Err(e) => Ok(HubCheck::Unreachable(e.to_string())),
    }
}
