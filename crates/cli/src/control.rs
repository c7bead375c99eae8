//! The CLI's side of the gateway's control endpoints: status and answers to approvals.
//! Talks only over a connection the gateway proved it owns (`gateway_link`), with the
//! control token from the data directory; never prints it.

use anyhow::{bail, Context, Result};
use countersign_local::gateway_link::{GatewayLink, LinkError};
use countersign_local::Home;
use countersign_policy::shown;
use reqwest::Method;
use serde_json::Value;
use std::borrow::Cow;

/// A string from the gateway's answer as a person should read it: names and arguments
/// come from clients, servers and configs, so hidden characters are shown as escapes.
fn text(v: &Value) -> Cow<'_, str> {
    shown::visible(v.as_str().unwrap_or("?"))
}

/// A JSON value on one line, hidden characters shown as escapes.
fn one_line(v: &Value) -> String {
    shown::visible(&v.to_string()).into_owned()
}

pub async fn status(home: &Home, json: bool) -> Result<i32> {
    let not_running = |why: &str| {
        if json {
            println!("{}", serde_json::json!({"running": false, "home": home.dir(), "why": why}));
        } else {
            println!("{why}");
        }
        Ok(3)
    };
    let link = match GatewayLink::for_home(home) {
        Ok(link) => link,
        Err(_) => return not_running(&format!("No Countersign gateway is running (data: {}).", home.dir().display())),
    };
    let base = format!("http://{}", link.addr());
    let body: Value = match link.control(Method::GET, "/_countersign/status", None).await {
        Ok((status, bytes)) if status.is_success() => serde_json::from_slice(&bytes).context("status answer")?,
        Ok((status, _)) => bail!("the gateway at {base} refused the status request: HTTP {status}"),
        Err(e @ LinkError::Impostor(_)) => bail!("{e}"),
        Err(_) => return not_running(&format!("No Countersign gateway answers at {base} (it may have stopped).")),
    };
    if json {
        println!("{body}");
        return Ok(0);
    }
    println!(
        "Countersign gateway running at {base}/mcp (pid {}, policy {})",
        body["pid"],
        body["policy_version"].as_str().unwrap_or("?")
    );
    if body["paused"].as_bool() == Some(true) {
        println!("PAUSED: every tool call is refused until `countersign resume`");
    }
    for key in ["policy_warning", "routing_warning", "hub_warning"] {
        if let Some(warning) = body[key].as_str() {
            println!("Warning: {warning}");
        }
    }
    match body["hub"]["state"].as_str() {
        Some("enrolled") => println!("Hub: {} (device {})", text(&body["hub"]["url"]), text(&body["hub"]["device_id"])),
        _ => println!("Hub: not enrolled"),
    }
    if let Some(who) = body["identity"].as_str() {
        println!("Records name: {who}");
    }
    println!("Servers:");
    let gauges = body["processes"].as_array().cloned().unwrap_or_default();
    let gauge =
        |name: &Value| gauges.iter().find(|g| &g["server"] == name).map(|g| format!("{}/{}", g["live"], g["cap"]));
    for s in body["servers"].as_array().into_iter().flatten() {
        let processes = gauge(&s["name"]).map(|g| format!("processes {g}")).unwrap_or_default();
        println!(
            "  {:<14} {:<6} {:<8}{}",
            text(&s["name"]),
            text(&s["transport"]),
            if s["trusted"].as_bool() == Some(true) { "trusted" } else { "" },
            processes
        );
    }
    // Processes of a server the config no longer names, still running in open sessions.
    let configured: Vec<&Value> = body["servers"].as_array().into_iter().flatten().map(|s| &s["name"]).collect();
    for g in gauges.iter().filter(|g| !configured.contains(&&g["server"])) {
        println!("  {:<14} (removed)        processes {}/{}", text(&g["server"]), g["live"], g["cap"]);
    }
    let sessions = body["sessions"].as_array().cloned().unwrap_or_default();
    println!("Sessions: {}", sessions.len());
    for s in &sessions {
        println!("  {} {} via {} ({} pending)", text(&s["id"]), text(&s["client"]), text(&s["route"]), s["pending"]);
    }
    let approvals = body["approvals"].as_array().cloned().unwrap_or_default();
    println!("Pending approvals: {}", approvals.len());
    for a in &approvals {
        let claim = a["client_name"].as_str().filter(|n| Some(*n) != a["client"].as_str());
        if a["plan"].is_object() {
            println!(
                "  {}  {}{} declares a plan for this session",
                text(&a["id"]),
                text(&a["client"]),
                claim.map(|n| format!(" (says it is {})", shown::quoted(n))).unwrap_or_default(),
            );
        } else {
            println!(
                "  {}  {}{} wants {}.{} {}",
                text(&a["id"]),
                text(&a["client"]),
                claim.map(|n| format!(" (says it is {})", shown::quoted(n))).unwrap_or_default(),
                text(&a["server"]),
                text(&a["tool"]),
                one_line(&a["arguments"])
            );
        }
        let waiting = a["waiting"].as_u64().unwrap_or(1);
        if waiting > 1 {
            println!(
                "      {waiting} identical calls wait: approving releases one; `--all {waiting}` releases these {waiting}"
            );
        }
        if let Some(by) = a["asked_by"]["requester"].as_str() {
            println!(
                "      asked by {} on {} (request {}), routed to you by the hub",
                shown::visible(by),
                text(&a["asked_by"]["device"]),
                text(&a["asked_by"]["request"])
            );
        }
        if let Some(approver) = a["route"]["route"]["approver"].as_object() {
            let who =
                match (approver.get("kind").and_then(|k| k.as_str()), approver.get("name").and_then(|n| n.as_str())) {
                    (Some("owner"), _) => "the agent's owner".to_string(),
                    (Some("manager"), _) => "your manager".to_string(),
                    (Some("group"), Some(g)) => format!("group {g}"),
                    (_, Some(name)) => name.to_string(),
                    (Some(kind), None) => kind.to_string(),
                    (None, None) => "someone else".to_string(),
                };
            println!(
                "      waiting for {} through the hub; `countersign deny {}` withdraws it",
                shown::visible(&who),
                text(&a["id"])
            );
            continue;
        }
        if let Some(plan) = a["plan"].as_object() {
            let title = plan["title"].as_str().unwrap_or("?").split_whitespace().collect::<Vec<_>>().join(" ");
            println!("      a plan for this session, as the client names it: {}", shown::quoted(&title));
            for item in plan["items"].as_array().into_iter().flatten() {
                println!("        allows {}", text(&item["words"]));
            }
            for item in plan["refused"].as_array().into_iter().flatten() {
                println!(
                    "        not granted: {}.{}: {}",
                    text(&item["server"]),
                    text(&item["tool"]),
                    text(&item["why"])
                );
            }
        }
        if let Some(words) = a["similar"]["words"].as_str() {
            println!(
                "      allow similar: {}   (countersign approve {} --similar)",
                shown::visible(words),
                text(&a["id"])
            );
        }
        println!("      countersign approve {0}   |   countersign deny {0}", text(&a["id"]));
    }
    Ok(0)
}

/// Calls a control endpoint; `Err` carries the gateway's own message.
async fn control(home: &Home, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
    let link = GatewayLink::for_home(home)?;
    let (status, bytes) = link.control(method, path, body).await?;
    if !status.is_success() {
        bail!("{}", String::from_utf8_lossy(&bytes).trim());
    }
    Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub async fn answer(
    home: &Home,
    id: &str,
    verdict: &str,
    length: Option<&str>,
    condition: Option<&str>,
    count: Option<usize>,
    similar: bool,
) -> Result<i32> {
    let mut url = reqwest::Url::parse("http://x/")?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(n) = count {
            q.append_pair("all", &n.to_string());
        }
        if let Some(l) = length {
            q.append_pair("for", l);
        }
        if let Some(c) = condition {
            q.append_pair("where", c);
        }
        if similar {
            q.append_pair("similar", "true");
        }
    }
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    control(home, Method::POST, &format!("/_countersign/approvals/{id}/{verdict}{query}"), None).await?;
    match (verdict, count) {
        ("approve", Some(n)) => eprintln!("approved ({n} identical call(s))"),
        ("approve", None) if similar => eprintln!("approved, and similar calls for the scope shown"),
        ("approve", None) => eprintln!("approved"),
        _ => eprintln!("denied"),
    }
    Ok(0)
}

/// The kill switch, through the running gateway (which records each change).
pub async fn set_paused(home: &Home, paused: bool) -> Result<i32> {
    let path = if paused { "/_countersign/pause" } else { "/_countersign/resume" };
    let v = control(home, Method::POST, path, None).await?;
    let now = if paused { "paused: every tool call is refused" } else { "resumed: tool calls run under policy" };
    let already = if v["changed"].as_bool() == Some(false) { " (it already was)" } else { "" };
    eprintln!("{now}{already}");
    Ok(0)
}

pub async fn reload(home: &Home) -> Result<i32> {
    let v = control(home, Method::POST, "/_countersign/policy/reload", None).await?;
    println!("policy {}", v["policy_version"].as_str().unwrap_or("?"));
    Ok(0)
}

/// After enrollment changed who this device answers for: the running gateway, if any,
/// names the new identity on its next record. A failure only says so (the gateway also
/// reads it again at its next sync).
pub async fn take_up_identity(home: &Home) {
    if home.read_runtime().is_none() {
        return;
    }
    if let Err(e) = control(home, Method::POST, "/_countersign/policy/reload", None).await {
        eprintln!(
            "note: the running gateway was not asked to read the new identity now ({e}); it does at its next sync"
        );
    }
}

/// After a command wrote `config` (a client routed, a secret moved): the gateway running
/// on this data folder, if it reads that file, takes it up now, so the entry a client was
/// just given works on its first connection. The gateway also watches the file and would
/// take it up a moment later; a failure here only says so.
pub async fn take_up_config(home: &Home, config: &std::path::Path) {
    let Some(running) = home.read_runtime() else { return };
    let same = |a: &std::path::Path| a == config || std::fs::canonicalize(a).ok() == std::fs::canonicalize(config).ok();
    if !running.config.as_deref().is_some_and(same) {
        return;
    }
    if let Err(e) = control(home, Method::POST, "/_countersign/policy/reload", None).await {
        eprintln!("note: the running gateway was not asked to read the config now ({e}); it takes it up when it sees the file change");
    }
}

pub async fn pins(home: &Home, json: bool) -> Result<i32> {
    let status = control(home, Method::GET, "/_countersign/status", None).await?;
    let blocked = status["blocked_tools"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", Value::Array(blocked));
        return Ok(0);
    }
    if blocked.is_empty() {
        println!("No tool is blocked.");
    }
    for b in &blocked {
        let server = text(&b["server"]);
        match b["tool"].as_str().map(shown::visible) {
            None => println!("{server}: its command or URL changed since it was approved"),
            Some(tool) => {
                println!("{server} {tool}: {}", text(&b["review"]["state"]));
                for line in b["review"]["diff"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(b["review"]["why"].as_array().into_iter().flatten())
                {
                    println!("    {}", shown::visible(line.as_str().unwrap_or_default()));
                }
                println!("    full definition: {}", one_line(&b["definition"]));
            }
        }
        println!(
            "    accept with: countersign pins accept {server} {}",
            shown::visible(b["tool"].as_str().unwrap_or_default())
        );
    }
    Ok(0)
}

pub async fn accept_pins(home: &Home, server: &str, tools: &[String]) -> Result<i32> {
    let v = control(
        home,
        Method::POST,
        &format!("/_countersign/pins/{server}/accept"),
        Some(serde_json::json!({"tools": tools})),
    )
    .await?;
    eprintln!("accepted {} tool(s) of `{server}`", v["accepted"]);
    Ok(0)
}

pub async fn grants(home: &Home, json: bool) -> Result<i32> {
    let v = control(home, Method::GET, "/_countersign/grants", None).await?;
    if json {
        println!("{}", v["grants"]);
        return Ok(0);
    }
    let grants = v["grants"].as_array().cloned().unwrap_or_default();
    if grants.is_empty() {
        println!("No grants.");
    }
    for g in grants {
        println!(
            "{}  {} may call {}.{} ({}){}",
            text(&g["id"]),
            text(&g["client_token"]),
            text(&g["server"]),
            text(&g["tool"]),
            one_line(&g["scope"]),
            g["condition"].as_str().map(|c| format!(" where {}", shown::visible(c))).unwrap_or_default()
        );
    }
    Ok(0)
}

pub async fn revoke_grant(home: &Home, id: &str) -> Result<i32> {
    control(home, Method::POST, &format!("/_countersign/grants/{id}/revoke"), None).await?;
    eprintln!("revoked {id}");
    Ok(0)
}
