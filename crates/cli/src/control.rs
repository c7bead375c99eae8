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

pub async fn answer(home: &Home, id: &str, verdict: &str) -> Result<i32> {
    let Some(base) = endpoint(home) else { bail!("no Countersign gateway is running") };
    let token = home.control_token()?;
    let resp = client()?
        .post(format!("{base}/_countersign/approvals/{id}/{verdict}"))
        .bearer_auth(token)
        .send()
        .await
        .context("cannot reach the gateway")?;
    if resp.status().is_success() {
        eprintln!("{}", if verdict == "approve" { "approved" } else { "denied" });
        Ok(0)
    } else {
        bail!("{}", resp.text().await.unwrap_or_default().trim())
    }
}
