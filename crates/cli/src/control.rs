//! The CLI's side of the gateway's control endpoints: status and answers to approvals.
//! Uses the control token from the data directory; never prints it.

use anyhow::{bail, Context, Result};
use countersign_gateway::Home;
use serde_json::Value;

fn endpoint(home: &Home) -> Option<String> {
    home.read_runtime().map(|r| format!("http://{}", r.listen))
}

fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().no_proxy().build()?)
}

pub async fn status(home: &Home, json: bool) -> Result<i32> {
    let Some(base) = endpoint(home) else {
        if json {
            println!("{}", serde_json::json!({"running": false, "home": home.dir()}));
        } else {
            println!("No Countersign gateway is running (data: {}).", home.dir().display());
        }
        return Ok(3);
    };
    let token = home.control_token()?;
    let resp = client()?.get(format!("{base}/_countersign/status")).bearer_auth(token).send().await;
    let body: Value = match resp {
        Ok(r) if r.status().is_success() => r.json().await.context("status answer")?,
        Ok(r) => bail!("the gateway at {base} refused the status request: HTTP {}", r.status()),
        Err(_) => {
            println!("No Countersign gateway answers at {base} (it may have stopped).");
            return Ok(3);
        }
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
        println!(
            "  {}  {} wants {}.{} {}",
            a["id"].as_str().unwrap_or("?"),
            a["client"].as_str().unwrap_or("?"),
            a["server"].as_str().unwrap_or("?"),
            a["tool"].as_str().unwrap_or("?"),
            a["arguments"]
        );
        println!("      countersign approve {0}   |   countersign deny {0}", a["id"].as_str().unwrap_or("?"));
    }
    Ok(0)
}

/// Calls a control endpoint; `Err` carries the gateway's own message.
async fn control(home: &Home, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
    let Some(base) = endpoint(home) else { bail!("no Countersign gateway is running") };
    let token = home.control_token()?;
    let mut req = client()?.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.context("cannot reach the gateway")?;
    if !resp.status().is_success() {
        bail!("{}", resp.text().await.unwrap_or_default().trim());
    }
    Ok(resp.json().await.unwrap_or(Value::Null))
}

pub async fn answer(
    home: &Home,
    id: &str,
    verdict: &str,
    length: Option<&str>,
    condition: Option<&str>,
) -> Result<i32> {
    let mut url = reqwest::Url::parse("http://x/")?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(l) = length {
            q.append_pair("for", l);
        }
        if let Some(c) = condition {
            q.append_pair("where", c);
        }
    }
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    control(home, reqwest::Method::POST, &format!("/_countersign/approvals/{id}/{verdict}{query}"), None).await?;
    eprintln!("{}", if verdict == "approve" { "approved" } else { "denied" });
    Ok(0)
}

pub async fn reload(home: &Home) -> Result<i32> {
    let v = control(home, reqwest::Method::POST, "/_countersign/policy/reload", None).await?;
    println!("policy {}", v["policy_version"].as_str().unwrap_or("?"));
    Ok(0)
}

pub async fn pins(home: &Home, json: bool) -> Result<i32> {
    let status = control(home, reqwest::Method::GET, "/_countersign/status", None).await?;
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
        reqwest::Method::POST,
        &format!("/_countersign/pins/{server}/accept"),
        Some(serde_json::json!({"tools": tools})),
    )
    .await?;
    eprintln!("accepted {} tool(s) of `{server}`", v["accepted"]);
    Ok(0)
}

pub async fn grants(home: &Home, json: bool) -> Result<i32> {
    let v = control(home, reqwest::Method::GET, "/_countersign/grants", None).await?;
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
    control(home, reqwest::Method::POST, &format!("/_countersign/grants/{id}/revoke"), None).await?;
    eprintln!("revoked {id}");
    Ok(0)
}
