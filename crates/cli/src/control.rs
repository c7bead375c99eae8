//! The CLI's side of the gateway's control endpoints: status and answers to approvals.
//! Talks only over a connection the gateway proved it owns (`gateway_link`), with the
//! control token from the data directory; never prints it.

use anyhow::{bail, Context, Result};
use countersign_gateway::gateway_link::{GatewayLink, LinkError};
use countersign_gateway::Home;
use reqwest::Method;
use serde_json::Value;

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
    if let Some(warning) = body["policy_warning"].as_str() {
        println!("Warning: {warning}");
    }
    println!("Servers:");
    for s in body["servers"].as_array().into_iter().flatten() {
        println!(
            "  {:<14} {:<6} {}",
            s["name"].as_str().unwrap_or("?"),
            s["transport"].as_str().unwrap_or("?"),
            if s["trusted"].as_bool() == Some(true) { "trusted" } else { "" }
        );
    }
    let sessions = body["sessions"].as_array().cloned().unwrap_or_default();
    println!("Sessions: {}", sessions.len());
    for s in &sessions {
        println!(
            "  {} {} via {} ({} pending)",
            s["id"].as_str().unwrap_or("?"),
            s["client"].as_str().unwrap_or("?"),
            s["route"].as_str().unwrap_or("?"),
            s["pending"]
        );
    }
    let approvals = body["approvals"].as_array().cloned().unwrap_or_default();
    println!("Pending approvals: {}", approvals.len());
    for a in &approvals {
        let claim = a["client_name"].as_str().filter(|n| Some(*n) != a["client"].as_str());
        println!(
            "  {}  {}{} wants {}.{} {}",
            a["id"].as_str().unwrap_or("?"),
            a["client"].as_str().unwrap_or("?"),
            claim.map(|n| format!(" (says it is {n:?})")).unwrap_or_default(),
            a["server"].as_str().unwrap_or("?"),
            a["tool"].as_str().unwrap_or("?"),
            a["arguments"]
        );
        let waiting = a["waiting"].as_u64().unwrap_or(1);
        if waiting > 1 {
            println!(
                "      {waiting} identical calls wait: approving releases one; `--all {waiting}` releases these {waiting}"
            );
        }
        println!("      countersign approve {0}   |   countersign deny {0}", a["id"].as_str().unwrap_or("?"));
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
    }
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    control(home, Method::POST, &format!("/_countersign/approvals/{id}/{verdict}{query}"), None).await?;
    match (verdict, count) {
        ("approve", Some(n)) => eprintln!("approved ({n} identical call(s))"),
        ("approve", None) => eprintln!("approved"),
        _ => eprintln!("denied"),
    }
    Ok(0)
}

pub async fn reload(home: &Home) -> Result<i32> {
    let v = control(home, Method::POST, "/_countersign/policy/reload", None).await?;
    println!("policy {}", v["policy_version"].as_str().unwrap_or("?"));
    Ok(0)
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
        let server = b["server"].as_str().unwrap_or("?");
        match b["tool"].as_str() {
            None => println!("{server}: its command or URL changed since it was approved"),
            Some(tool) => {
                println!("{server} {tool}: {}", b["review"]["state"].as_str().unwrap_or("?"));
                for line in b["review"]["diff"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(b["review"]["why"].as_array().into_iter().flatten())
                {
                    println!("    {}", line.as_str().unwrap_or_default());
                }
                println!("    full definition: {}", b["definition"]);
            }
        }
        println!("    accept with: countersign pins accept {server} {}", b["tool"].as_str().unwrap_or_default());
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
            g["id"].as_str().unwrap_or("?"),
            g["client_token"].as_str().unwrap_or("?"),
            g["server"].as_str().unwrap_or("?"),
            g["tool"].as_str().unwrap_or("?"),
            g["scope"],
            g["condition"].as_str().map(|c| format!(" where {c}")).unwrap_or_default()
        );
    }
    Ok(0)
}

pub async fn revoke_grant(home: &Home, id: &str) -> Result<i32> {
    control(home, Method::POST, &format!("/_countersign/grants/{id}/revoke"), None).await?;
    eprintln!("revoked {id}");
    Ok(0)
}
