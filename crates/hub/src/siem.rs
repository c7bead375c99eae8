//! Forwarding ingested records to the SIEM: as OTLP logs (OTLP/HTTP with JSON bodies, to
//! `<endpoint>/v1/logs`) and as Splunk HTTP Event Collector events, whichever are
//! configured. Runs beside ingestion on a queue of its own, so a slow or absent SIEM never
//! slows the devices; each batch is tried a few times with backoff. A batch that cannot be
//! delivered, or that finds the queue full, is logged as an error: never dropped silently.
//! The HEC token comes from a file and is never logged.

use countersign_audit::wire::WireRecord;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Default)]
pub struct SiemConfig {
    /// OTLP/HTTP endpoint base, such as `http://collector:4318`.
    pub otlp: Option<String>,
    /// Splunk HEC base URL, such as `https://splunk:8088`, and its token.
    pub hec: Option<(String, String)>,
}

/// A queue to the configured SIEM sinks.
#[derive(Clone)]
pub struct Siem {
    tx: Option<mpsc::Sender<(String, Vec<WireRecord>)>>,
}

impl Siem {
    pub fn disabled() -> Self {
        Siem { tx: None }
    }

    /// Starts the forwarder when any sink is configured.
    pub fn start(config: SiemConfig) -> Self {
        if config.otlp.is_none() && config.hec.is_none() {
            return Siem::disabled();
        }
        let (tx, mut rx) = mpsc::channel::<(String, Vec<WireRecord>)>(1024);
        tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
            while let Some((device, records)) = rx.recv().await {
                if let Some(base) = &config.otlp {
                    let url = format!("{}/v1/logs", base.trim_end_matches('/'));
                    deliver(&http, "OTLP", &url, None, "application/json", otlp_body(&device, &records).to_string())
                        .await;
                }
                if let Some((base, token)) = &config.hec {
                    let url = format!("{}/services/collector/event", base.trim_end_matches('/'));
                    let auth = format!("Splunk {token}");
                    deliver(&http, "Splunk HEC", &url, Some(&auth), "application/json", hec_body(&device, &records))
                        .await;
                }
            }
        });
        Siem { tx: Some(tx) }
    }

    /// Queues newly stored records of `device` for the SIEM.
    pub fn forward(&self, device: &str, records: Vec<WireRecord>) {
        let Some(tx) = &self.tx else { return };
        if records.is_empty() {
            return;
        }
        let n = records.len();
        if tx.try_send((device.to_string(), records)).is_err() {
            tracing::error!(
                device,
                records = n,
                "SIEM export queue is full: these records will be missing from the SIEM"
            );
        }
    }
}

async fn deliver(http: &reqwest::Client, sink: &str, url: &str, auth: Option<&str>, content_type: &str, body: String) {
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=5 {
        let mut req = http.post(url).header(reqwest::header::CONTENT_TYPE, content_type).body(body.clone());
        if let Some(a) = auth {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(sink, attempt, status = %r.status(), "SIEM export refused"),
            Err(e) => tracing::warn!(sink, attempt, "SIEM export failed: {}", e.without_url()),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    tracing::error!(sink, "SIEM export gave up on a batch after 5 attempts");
}

fn unix_nanos(rfc3339: &str) -> u128 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp_nanos().max(0) as u128)
        .unwrap_or(0)
}

/// The record's fields with the export's names (arguments as JSON).
fn fields(r: &WireRecord) -> Vec<(&'static str, Value)> {
    let s = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    // Stored as `true` or `false`; a boolean here.
    let verified = countersign_audit::chain::verified_value(r.user_verified.as_deref());
    vec![
        ("id", json!(r.id)),
        ("time", json!(r.time)),
        ("kind", json!(r.kind)),
        ("user", json!(r.user)),
        ("device", json!(r.device)),
        ("client", s(&r.client)),
        ("client_name", s(&r.client_name)),
        ("session", s(&r.session)),
        ("server", s(&r.server)),
        ("tool", s(&r.tool)),
        ("method", s(&r.method)),
        ("arguments", r.arguments.as_deref().and_then(|a| serde_json::from_str(a).ok()).unwrap_or(Value::Null)),
        ("decision", json!(r.decision)),
        ("rule", s(&r.rule)),
        ("reason", s(&r.reason)),
        ("approval", s(&r.approval)),
        ("policy_version", s(&r.policy_version)),
        ("class", s(&r.class)),
        ("label", s(&r.label)),
        ("grant_id", s(&r.grant_id)),
        ("grant_length", s(&r.grant_length)),
        ("trace_id", s(&r.trace_id)),
        ("user_verified", verified.map_or(Value::Null, Value::Bool)),
        ("os_user", s(&r.os_user)),
        ("owner", s(&r.owner)),
        ("approver", s(&r.approver)),
        ("request_id", s(&r.request_id)),
        ("hash", s(&r.hash)),
    ]
}

/// An OTLP `ExportLogsServiceRequest` in its JSON encoding. A record of a request that
/// carried a W3C trace id is the log record of that trace (`traceId`, hex in OTLP/JSON),
/// so the SIEM joins it with the client's and the server's spans; it names no span (the
/// gateway makes none).
pub fn otlp_body(device: &str, records: &[WireRecord]) -> Value {
    let logs: Vec<Value> = records
        .iter()
        .map(|r| {
            let (number, text) = if r.decision == "deny" { (13, "WARN") } else { (9, "INFO") };
            let attributes: Vec<Value> = fields(r)
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let value = match v {
                        Value::Bool(b) => json!({ "boolValue": b }),
                        Value::String(s) => json!({ "stringValue": s }),
                        other => json!({ "stringValue": other.to_string() }),
                    };
                    json!({ "key": format!("countersign.{k}"), "value": value })
                })
                .collect();
            let mut log = json!({
                "timeUnixNano": unix_nanos(&r.time).to_string(),
                "severityNumber": number,
                "severityText": text,
                "body": { "stringValue": format!("{} {} {}.{}", r.decision, r.method.as_deref().unwrap_or(&r.kind),
                    r.server.as_deref().unwrap_or("-"), r.tool.as_deref().unwrap_or("-")) },
                "attributes": attributes,
            });
            if let Some(trace) = r.trace_id.as_deref().filter(|t| is_trace_id(t)) {
                log["traceId"] = json!(trace);
            }
            log
        })
        .collect();
    json!({
        "resourceLogs": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": "countersign" } },
                { "key": "countersign.device_id", "value": { "stringValue": device } }
            ] },
            "scopeLogs": [{ "scope": { "name": "countersign-hub", "version": env!("CARGO_PKG_VERSION") }, "logRecords": logs }]
        }]
    })
}

/// Whether `text` is a W3C trace id as a device stores one (32 lower-case hex digits, not
/// all zero): anything else a device sent stays an attribute, never the log's trace id,
/// which a collector would refuse the whole batch for.
fn is_trace_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) && text.bytes().any(|b| b != b'0')
}

/// Splunk HEC events, one JSON object per line.
pub fn hec_body(device: &str, records: &[WireRecord]) -> String {
    records
        .iter()
        .map(|r| {
            let event: serde_json::Map<String, Value> =
                fields(r).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            json!({
                "time": unix_nanos(&r.time) as f64 / 1e9,
                "host": device,
                "source": "countersign-hub",
                "sourcetype": "countersign:audit",
                "event": event,
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(trace_id: Option<&str>) -> WireRecord {
        WireRecord {
            seq: 1,
            id: "r-1".into(),
            time: "2026-12-01T10:00:00Z".into(),
            kind: "call".into(),
            user: "ana".into(),
            device: "ana-laptop".into(),
            client: None,
            client_name: None,
            client_version: None,
            session: Some("s-1".into()),
            server: Some("fs".into()),
            tool: Some("read_file".into()),
            method: Some("tools/call".into()),
            arguments: None,
            decision: "allow".into(),
            rule: None,
            reason: None,
            approval: None,
            policy_version: None,
            class: None,
            label: None,
            grant_id: None,
            grant_length: None,
            trace_id: trace_id.map(str::to_string),
            user_verified: None,
            os_user: None,
            owner: None,
            approver: None,
            request_id: None,
            prev_hash: None,
            hash: None,
        }
    }

    /// A record's trace id is its OTLP log record's `traceId` (and an attribute), and a
    /// field of its HEC event; a record without one, or with one that is not a trace id,
    /// has no `traceId`.
    #[test]
    fn the_trace_id_is_the_log_records_trace() {
        const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
        let body = otlp_body("d1", &[record(Some(TRACE)), record(None), record(Some("4BF92F35"))]);
        let logs = &body["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
        assert_eq!(logs[0]["traceId"], TRACE);
        assert!(logs[0].get("spanId").is_none(), "the gateway makes no span");
        let attribute = logs[0]["attributes"].as_array().unwrap().iter().find(|a| a["key"] == "countersign.trace_id");
        assert_eq!(attribute.unwrap()["value"]["stringValue"], TRACE);
        assert!(logs[1].get("traceId").is_none());
        assert!(logs[2].get("traceId").is_none(), "not a trace id: an attribute only");
        let events: Vec<Value> = hec_body("d1", &[record(Some(TRACE)), record(None)])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events[0]["event"]["trace_id"], TRACE);
        assert_eq!(events[1]["event"]["trace_id"], Value::Null);
    }

    /// An agent's record: `user_verified` a boolean attribute (OTLP `boolValue`) and a
    /// boolean field of its HEC event, `os_user` and `owner` strings; a record without them
    /// has neither attribute, and null fields in HEC.
    #[test]
    fn the_identity_fields_are_attributes_and_event_fields() {
        let agent = WireRecord {
            user: "agent:release-bot".into(),
            user_verified: Some("true".into()),
            os_user: Some("ana".into()),
            owner: Some("ana@example.com".into()),
            ..record(None)
        };
        let account = WireRecord { user_verified: Some("false".into()), os_user: Some("ana".into()), ..record(None) };
        let body = otlp_body("d1", &[agent.clone(), account.clone(), record(None)]);
        let logs = &body["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
        let attribute = |log: usize, key: &str| {
            logs[log]["attributes"].as_array().unwrap().iter().find(|a| a["key"] == key).map(|a| a["value"].clone())
        };
        assert_eq!(attribute(0, "countersign.user_verified"), Some(json!({ "boolValue": true })));
        assert_eq!(attribute(0, "countersign.os_user"), Some(json!({ "stringValue": "ana" })));
        assert_eq!(attribute(0, "countersign.owner"), Some(json!({ "stringValue": "ana@example.com" })));
        assert_eq!(attribute(0, "countersign.user"), Some(json!({ "stringValue": "agent:release-bot" })));
        assert_eq!(attribute(1, "countersign.user_verified"), Some(json!({ "boolValue": false })));
        assert_eq!(attribute(1, "countersign.owner"), None);
        for key in ["countersign.user_verified", "countersign.os_user", "countersign.owner"] {
            assert_eq!(attribute(2, key), None, "{key} of a record without it");
        }
        let events: Vec<Value> =
            hec_body("d1", &[agent, account, record(None)]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(events[0]["event"]["user_verified"], true);
        assert_eq!(events[0]["event"]["os_user"], "ana");
        assert_eq!(events[0]["event"]["owner"], "ana@example.com");
        assert_eq!(events[1]["event"]["user_verified"], false);
        assert_eq!(events[1]["event"]["owner"], Value::Null);
        assert_eq!(events[2]["event"]["user_verified"], Value::Null);
        assert_eq!(events[2]["event"]["os_user"], Value::Null);
    }
}
