//! `countersign policy show` and `countersign policy explain`: the effective policy by
//! layer, and the decision for one tool with the reasons. Both read the same files the
//! gateway reads (config, managed file, signed bundle) and need no running gateway; the
//! tool's definition comes from the pins the gateway recorded, when there is one.

use anyhow::{bail, Context, Result};
use countersign_gateway::policy_layers;
use countersign_local::{config_file, Config, Home};
use countersign_policy::{CallInput, Identity, Layer, Policy, PolicySettings, ServerInfo, ToolDef};
use serde_json::{json, Value};
use std::path::PathBuf;

fn config(home: &Home, path: Option<PathBuf>) -> Result<Config> {
    let chosen = config_file::for_command(home, path);
    Ok(if chosen.explicit() || chosen.path.exists() { Config::load(&chosen.path)? } else { Config::empty() })
}

fn settings_json(s: &PolicySettings) -> Value {
    serde_json::to_value(s).unwrap_or_default()
}

pub fn show(home: &Home, path: Option<PathBuf>, as_json: bool) -> Result<i32> {
    let config = config(home, path)?;
    let (layers, rejected) = policy_layers::load(&config.policy, home)?;
    let policy = Policy::from_layers(layers.clone()).map_err(|e| anyhow::anyhow!("{}: {e}", e.layer.as_str()))?;
    let (grants, grants_layer) = policy.grant_settings();
    let managed = layers.managed_settings();
    let doc = json!({
        "policy_version": policy.version(),
        "layers": {
            "bundle": layers.bundle.as_ref().map(|(p, v)| json!({"version": v, "path": policy_layers::bundle_path(home), "policy": settings_json(p)})),
            "managed": layers.managed.as_ref().map(|m| json!({"path": policy_layers::managed_file(), "policy": settings_json(&m.policy), "managed": m.managed})),
            "user": {"path": config.path, "policy": settings_json(&layers.user)},
        },
        "grants": {"layer": grants_layer, "settings": grants},
        "user_may_allow": managed.user_may_allow,
        "rejected": rejected.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    if as_json {
        println!("{doc}");
        return Ok(0);
    }
    println!("Effective policy {} (strongest layer first)", policy.version());
    let print_layer = |name: &str, origin: String, s: &PolicySettings| {
        println!("\n[{name}] {origin}");
        for (list, rules) in [("deny", &s.deny), ("ask", &s.ask), ("allow", &s.allow)] {
            for r in rules {
                println!("  {list:<6} {r}");
            }
        }
        for (class, d) in countersign_policy::ToolClass::ALL.iter().filter_map(|c| s.defaults.get(*c).map(|d| (c, d))) {
            println!("  default {class} → {}", d.as_str());
        }
        for (pattern, o) in &s.classify {
            println!(
                "  classify {pattern} as {}{}",
                o.class(),
                o.label().map(|l| format!(" ({l})")).unwrap_or_default()
            );
        }
    };
    if let Some((p, v)) = &layers.bundle {
        print_layer("bundle", format!("version {v}, {}", policy_layers::bundle_path(home).display()), p);
    }
    if let Some(m) = &layers.managed {
        print_layer("managed", policy_layers::managed_file().display().to_string(), &m.policy);
        if !m.managed.user_may_allow {
            println!("  the user's allow rules and looser defaults are ignored");
        }
    }
    let user_origin = config.path.as_ref().map_or("(no config file)".to_string(), |p| p.display().to_string());
    print_layer("user", user_origin, &layers.user);
    println!("\n[builtin] read → allow, write → ask, sensitive → ask, destructive → deny");
    let lengths: Vec<&str> = grants.lengths.iter().map(|l| l.as_str()).collect();
    println!(
        "\nGrants (set by {}): lengths {}; once only: {}; lock after {} denials in {}s for {}s; {} prompts a minute",
        grants_layer.as_str(),
        lengths.join(", "),
        grants.once_only.join(", "),
        grants.lockout_after,
        grants.lockout_window_secs,
        grants.lockout_secs,
        grants.prompts_per_minute
    );
    for e in &rejected {
        println!("\nREJECTED (the last good layer stays): {e}");
    }
    Ok(0)
}

/// Splits `mcp__server__tool`.
fn split(name: &str) -> Result<(String, String)> {
    let rest = name.strip_prefix("mcp__").context("the name must look like mcp__server__tool")?;
    let (server, tool) = rest.split_once("__").context("the name must look like mcp__server__tool")?;
    if server.is_empty() || tool.is_empty() {
        bail!("the name must look like mcp__server__tool");
    }
    Ok((server.to_string(), tool.to_string()))
}

/// The pinned definition of a tool, if the gateway has seen it.
fn pinned_def(home: &Home, server: &str, tool: &str) -> Option<ToolDef> {
    let text = std::fs::read_to_string(home.dir().join("pins.json")).ok()?;
    let pins: countersign_policy::PinSet = serde_json::from_str(&text).ok()?;
    ToolDef::from_json(&pins.servers.get(server)?.tools.get(tool)?.definition)
}

pub struct Explain {
    pub name: String,
    pub args: Option<String>,
    pub client: Option<String>,
    pub config: Option<PathBuf>,
    pub json: bool,
}

pub fn explain(home: &Home, e: Explain) -> Result<i32> {
    let config = config(home, e.config)?;
    let (server, tool) = split(&e.name)?;
    let arguments: Value = match &e.args {
        Some(text) => serde_json::from_str(text).context("--args must be a JSON object")?,
        None => json!({}),
    };
    if !arguments.is_object() {
        bail!("--args must be a JSON object");
    }
    let policy = policy_layers::compile(&config.policy, home)?.0;
    let info = config.servers.get(&server).map(|s| s.info.clone()).unwrap_or_else(|| ServerInfo::named(&server));
    let def = pinned_def(home, &server, &tool);
    let client = e.client.unwrap_or_default();
    let identity = Identity { client_token: client.clone(), client_name: Some(client), ..Default::default() };
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let v = policy.decide(&CallInput {
        identity: &identity,
        server: &info,
        tool: &tool,
        def: def.as_ref(),
        arguments: &arguments,
        grants: None,
        resolved: None,
        gate: Default::default(),
        now_ms,
    });
    if e.json {
        println!(
            "{}",
            json!({
                "decision": v.decision, "class": v.class, "rule": v.rule, "reason": v.reason, "layer": v.layer,
                "label": v.label, "class_source": v.class_source, "class_reason": v.class_reason,
                "policy_version": v.policy_version, "definition_known": def.is_some(),
                "server_configured": config.servers.contains_key(&server),
                "approver": v.route.as_ref().map(|r| json!({
                    "approver": r.approver.text(), "self_approval": r.self_approval,
                    "fallback": r.fallback, "rule": r.rule, "layer": r.layer.as_str(), "who": r.who(),
                })),
            })
        );
        return Ok(0);
    }
    println!("{} {}", v.decision.as_str(), v.reason);
    println!("  class:  {} ({}: {})", v.class, v.class_source.as_str(), v.class_reason);
    if let Some(label) = &v.label {
        println!("  label:  {label}");
    }
    println!("  rule:   {}", v.rule);
    if let Some(route) = &v.route {
        println!("  asks:   {}", route.who());
    }
    println!("  layer:  {}{}", v.layer.as_str(), if v.layer == Layer::Builtin { " (default)" } else { "" });
    println!("  policy: {}", v.policy_version);
    if def.is_none() {
        println!("  note:   the gateway has not pinned this tool's definition, so its annotations were not consulted");
    }
    if !config.servers.contains_key(&server) {
        println!("  note:   no server `{server}` is configured");
    }
    Ok(0)
}

/// The key's passphrase: prompted on a terminal, else the first line of stdin (never argv).
fn passphrase() -> Result<Option<String>> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

/// `countersign policy keygen DIR`: a minisign key pair for signing policy bundles:
/// `bundle.pub` (goes into managed.toml as `bundle_public_key`) and `bundle.key` (0600,
/// encrypted with a passphrase, compatible with the minisign tool; stays with IT, never
/// on employees' laptops).
pub fn keygen(dir: &std::path::Path) -> Result<i32> {
    std::fs::create_dir_all(dir)?;
    let kp = minisign::KeyPair::generate_encrypted_keypair(passphrase()?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let secret = kp.sk.to_box(Some("countersign policy bundle key")).map_err(|e| anyhow::anyhow!("{e}"))?.into_string();
    let key_path = dir.join("bundle.key");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&key_path).with_context(|| format!("{} (it must not exist yet)", key_path.display()))?;
    std::io::Write::write_all(&mut f, secret.as_bytes())?;
    std::fs::write(dir.join("bundle.pub"), kp.pk.to_base64() + "\n")?;
    println!("{}", kp.pk.to_base64());
    eprintln!("wrote {} (keep it with IT) and {}", key_path.display(), dir.join("bundle.pub").display());
    Ok(0)
}

/// `countersign policy sign --key KEY BUNDLE`: writes `BUNDLE.minisig`.
pub fn sign(key: &std::path::Path, bundle: &std::path::Path) -> Result<i32> {
    let text = std::fs::read_to_string(key).with_context(|| key.display().to_string())?;
    let sk = minisign::SecretKeyBox::from_string(&text)
        .and_then(|b| b.into_secret_key(passphrase().ok().flatten()))
        .map_err(|e| anyhow::anyhow!("{}: cannot open the minisign secret key: {e}", key.display()))?;
    let document = std::fs::read(bundle).with_context(|| bundle.display().to_string())?;
    // Refuse to sign what the gateway would refuse to load.
    let doc: toml::Value = toml::from_str(std::str::from_utf8(&document)?).context("the bundle is not TOML")?;
    if doc.get("bundle").and_then(|b| b.get("version")).is_none() {
        bail!("the bundle needs a [bundle] table with `version` and `expires`");
    }
    let sig = minisign::sign(None, &sk, std::io::Cursor::new(&document), Some("countersign policy bundle"), None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = bundle.as_os_str().to_owned();
    out.push(".minisig");
    std::fs::write(&out, sig.into_string())?;
    eprintln!("wrote {}", PathBuf::from(out).display());
    Ok(0)
}
