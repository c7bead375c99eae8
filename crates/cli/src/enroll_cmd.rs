//! `countersign enroll` and `countersign whoami`: this device's link to the hub and who
//! its records name. Enrollment by sign-in opens the hub's page in the browser (or prints
//! the address and code: `--no-browser`, or no display) and waits for the person's answer;
//! enrollment by token is for MDM roll-outs and leaves the person unverified until they
//! sign in. Never prints a credential or the device code.

use anyhow::Result;
use countersign_gateway::who::Who;
use countersign_local::Home;
use countersign_sync::hub_sync::{self, HubLink};
use countersign_sync::sign_in_enroll::{self, Nudge};
use std::io::Write;

pub async fn by_token(home: &Home, hub_url: &str, token: &str, name: &str, agent: Option<&str>) -> Result<i32> {
    let device = hub_sync::enroll(home, hub_url, token, name, agent).await?;
    println!("enrolled with {hub_url} as device {device} ({name})");
    let who = Who::of(home);
    match agent {
        Some(_) => println!("records name {}; what policy would ask is denied here", who.shown()),
        None => println!("records name {} until you sign in: countersign enroll {hub_url}", who.shown()),
    }
    crate::control::take_up_identity(home).await;
    Ok(0)
}

/// Whether a browser can be opened here: a desktop session on Linux; always elsewhere.
fn has_display() -> bool {
    if cfg!(target_os = "linux") {
        ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
    } else {
        true
    }
}

pub async fn by_sign_in(home: &Home, hub_url: &str, name: &str, no_browser: bool) -> Result<i32> {
    let os_user = Who::of(home).os_user;
    let browser = !no_browser && has_display();
    let nudge = if browser { Some(Nudge::bind().await?) } else { None };
    let asked = sign_in_enroll::ask(home, hub_url, name, &os_user, nudge.as_ref()).await?;
    let complete = asked.verification_uri_complete.clone().unwrap_or_else(|| asked.verification_uri.clone());
    let opened = match (browser, url::Url::parse(&complete)) {
        (true, Ok(u)) => match countersign_vault::oauth::browser::open(&u).await {
            Ok(()) => true,
            Err(e) => {
                eprintln!("could not open a browser ({e})");
                false
            }
        },
        _ => false,
    };
    let doing = if asked.binds { "bind this device to you" } else { "enroll this device" };
    if opened {
        println!("A browser opened to the hub's page to {doing}: sign in with your company account there and confirm the code {}", asked.user_code);
        println!("(if it did not open, or on another device, open {complete})");
    } else {
        println!(
            "To {doing}, open {} in a browser, sign in with your company account and confirm the code {}",
            asked.verification_uri, asked.user_code
        );
        println!("(or open {complete})");
    }
    let _ = std::io::stdout().flush();
    let done = sign_in_enroll::wait(home, asked, nudge.as_ref()).await?;
    let how = if done.bound { "bound to" } else { "enrolled as" };
    println!("device {} {how} {} at {hub_url}", done.device_id, done.user);
    crate::control::take_up_identity(home).await;
    Ok(0)
}

pub async fn whoami(home: &Home, json: bool) -> Result<i32> {
    let link = HubLink::load(home);
    let mut note = None;
    if link.is_some() {
        // The hub's word when it can be had; what this device last heard otherwise.
        match tokio::time::timeout(std::time::Duration::from_secs(10), hub_sync::refresh_identity(home)).await {
            Ok(Ok(true)) => crate::control::take_up_identity(home).await,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => note = Some(format!("the hub was not asked ({e}); this is what it last said")),
            Err(_) => note = Some("the hub did not answer in 10 s; this is what it last said".into()),
        }
    }
    let who = Who::of(home);
    let link = HubLink::load(home);
    // The id records carry; the hub knows the device by its own id too.
    let device = home.device_id()?;
    if json {
        let value = serde_json::json!({
            "user": who.user,
            "user_verified": who.verified,
            "os_user": who.os_user,
            "agent": who.agent.as_ref().map(|a| a.name.clone()),
            "owner": who.agent.as_ref().and_then(|a| a.owner.clone()),
            "suspended": who.agent.as_ref().and_then(|a| a.suspended.clone()),
            "device": device,
            "hub": link.as_ref().map(|l| l.url.clone()),
            "hub_device_id": link.as_ref().map(|l| l.device_id.clone()),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{}", who.shown());
        match &link {
            Some(l) => println!("device {device} (at the hub {}: device {})", l.url, l.device_id),
            None => println!("device {device} (not enrolled with a hub)"),
        }
    }
    if let (false, Some(why)) = (json, who.agent.as_ref().and_then(|a| a.suspended.as_ref())) {
        println!("SUSPENDED: {why}");
    }
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    Ok(0)
}
