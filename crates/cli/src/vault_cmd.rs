//! `countersign secret …` and `countersign auth …`: secrets in the keychain and sign-ins
//! to remote servers. Values are read from a prompt or from stdin, never from the command
//! line, and are never printed.

use anyhow::{anyhow, bail, Context, Result};
use countersign_local::config::{Config, Transport};
use countersign_local::Home;
use countersign_local::{config_file, secret_import};
use countersign_vault::oauth::{self, ServerAuth, SignInRequest};
use countersign_vault::{Account, Keychain, Secret, SecretName};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// The config these commands read: the one rule every command follows.
fn config_path(home: &Home, config: Option<PathBuf>) -> PathBuf {
    config_file::for_command(home, config).path
}

fn load_config(path: &Path) -> Result<Option<Config>> {
    if path.exists() {
        Ok(Some(Config::load(path)?))
    } else {
        Ok(None)
    }
}

async fn keychain() -> Result<Keychain> {
    Keychain::open().await.map_err(|e| anyhow!("no keychain is available: {e}"))
}

/// The value to store: from a hidden prompt on a terminal, else all of stdin (one
/// trailing newline dropped).
fn read_value(name: &SecretName) -> Result<Secret> {
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Value for secret `{name}` (not shown): ")).context("reading the value")?
    } else {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the value from stdin")?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        text
    };
    if value.is_empty() {
        bail!("the value is empty; nothing stored");
    }
    Ok(Secret::new(value))
}

pub async fn set(name: &str) -> Result<i32> {
    let name = SecretName::new(name)?;
    let value = read_value(&name)?;
    keychain().await?.set(&Account::Secret(name.clone()), &value).await?;
    eprintln!("stored secret `{name}` in the keychain");
    Ok(0)
}

pub async fn remove(name: &str) -> Result<i32> {
    let name = SecretName::new(name)?;
    if keychain().await?.delete(&Account::Secret(name.clone())).await? {
        eprintln!("removed secret `{name}` from the keychain");
        Ok(0)
    } else {
        bail!("no secret `{name}` in the keychain")
    }
}

pub async fn list(home: &Home, config: Option<PathBuf>, json: bool) -> Result<i32> {
    let path = config_path(home, config);
    let uses = load_config(&path)?.map(|c| c.secret_uses()).unwrap_or_default();
    let stored: Vec<SecretName> = keychain()
        .await?
        .accounts()
        .await?
        .into_iter()
        .filter_map(|a| match a {
            Account::Secret(n) => Some(n),
            Account::OAuth(_) | Account::ClientToken(_) | Account::HubDevice(_) | Account::Idp(_) => None,
        })
        .collect();
    let mut names: Vec<&SecretName> = stored.iter().chain(uses.keys()).collect();
    names.sort();
    names.dedup();
    let rows: Vec<serde_json::Value> = names
        .iter()
        .map(|n| {
            serde_json::json!({
                "name": n.as_str(),
                "stored": stored.contains(n),
                "used_by": uses.get(*n).cloned().unwrap_or_default(),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no secrets");
    }
    for (n, row) in names.iter().zip(&rows) {
        let used = uses.get(*n).map(|u| u.join(", ")).unwrap_or_else(|| "unused".into());
        let state = if row["stored"] == true { "stored " } else { "MISSING" };
        println!("{state} {:<24} {used}", n.as_str());
    }
    Ok(0)
}

/// Moves plaintext credentials found in the config into the keychain, replacing each with
/// a reference. Asks for each on a terminal unless `yes`; off a terminal without `yes`, only
/// lists them.
pub async fn import(home: &Home, config: Option<PathBuf>, yes: bool) -> Result<i32> {
    let path = config_path(home, config);
    if !path.exists() {
        bail!("{}: no such config", path.display());
    }
    let found = secret_import::find(&path)?;
    if found.is_empty() {
        println!("{}: no plaintext secrets found", path.display());
        return Ok(0);
    }
    let interactive = std::io::stdin().is_terminal() && !yes;
    if !interactive && !yes {
        for f in &found {
            println!("plaintext: {}", f.field());
        }
        bail!("{} plaintext secret(s) found; run with --yes to move them into the keychain", found.len());
    }
    let ask = |f: &secret_import::Found| -> bool {
        if !interactive {
            return true;
        }
        print!("Move {} into the keychain as `{}`? [y/N] ", f.field(), f.name);
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim().eq_ignore_ascii_case("y")
    };
    let moved = secret_import::import(&path, ask).await?;
    if !moved.is_empty() {
        crate::control::take_up_config(home, &path).await;
    }
    for f in &moved {
        match &f.instead_of {
            None => println!("moved {} into the keychain as `{}`", f.field(), f.name),
            Some(wanted) => println!(
                "moved {} into the keychain as `{}`: `{wanted}` is taken (by another reference or a keychain item, \
                 left as it is)",
                f.field(),
                f.name
            ),
        }
    }
    println!("{} secret(s) moved; {} now refers to them by name", moved.len(), path.display());
    Ok(0)
}

fn remote(config: &Config, server: &str) -> Result<(String, countersign_local::config::OAuthSettings)> {
    match config.servers.get(server).map(|s| &s.transport) {
        Some(Transport::Http { url, oauth, .. }) => Ok((url.clone(), oauth.clone())),
        Some(Transport::Stdio { .. }) => bail!("`{server}` is a local (stdio) server; only remote servers sign in"),
        None => bail!("no server `{server}` in the config"),
    }
}

pub async fn login(home: &Home, config: Option<PathBuf>, server: &str, no_browser: bool) -> Result<i32> {
    let path = config_path(home, config);
    let config = load_config(&path)?.ok_or_else(|| anyhow!("{}: no such config", path.display()))?;
    let (url, settings) = remote(&config, server)?;
    if settings.enterprise {
        return enterprise_login(server, &url, &settings, no_browser).await;
    }
    let request = SignInRequest {
        server: server.to_string(),
        url,
        scopes: settings.scopes,
        client_id: settings.client_id,
        deadline: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<url::Url>();
    let sign_in = oauth::sign_in(&request, keychain().await?, move |u| {
        let _ = tx.send(u.clone());
        Ok(())
    });
    let opener = async move {
        let Ok(u) = rx.await else { return };
        if no_browser {
            println!("Open this address in a browser to sign in to `{server}`:\n{u}");
            let _ = std::io::stdout().flush();
        } else if let Err(e) = oauth::browser::open(&u).await {
            println!("Could not open a browser ({e}). Open this address to sign in to `{server}`:\n{u}");
            let _ = std::io::stdout().flush();
        } else {
            eprintln!("A browser opened to sign in to `{server}`; waiting for it to come back…");
        }
    };
    let (result, ()) = tokio::join!(sign_in, opener);
    let done = result?;
    println!(
        "Signed in to `{server}`{}{}",
        done.issuer.map(|i| format!(" (authorization server {i})")).unwrap_or_default(),
        if done.scopes.is_empty() { String::new() } else { format!("; scopes: {}", done.scopes.join(" ")) }
    );
    Ok(0)
}

/// A server reached with the person's sign-in to the company's IdP: that sign-in (in the
/// browser, only when none usable is kept: one for every such server), then the token
/// exchange, with no consent screen for the server.
async fn enterprise_login(
    server: &str,
    url: &str,
    settings: &countersign_local::config::OAuthSettings,
    no_browser: bool,
) -> Result<i32> {
    use countersign_vault::oauth::enterprise;
    let e = countersign_gateway::credentials::enterprise(settings)
        .await
        .map_err(|e| anyhow!(e))?
        .ok_or_else(|| anyhow!("`{server}` names no identity provider"))?;
    let issuer = e.idp.issuer.clone();
    let open = move |u: url::Url| async move {
        if no_browser {
            println!("Open this address in a browser to sign in to your company's identity provider:\n{u}");
        } else if let Err(e) = oauth::browser::open(&u).await {
            println!("Could not open a browser ({e}). Open this address to sign in to {issuer}:\n{u}");
        } else {
            eprintln!("A browser opened to sign in to {issuer}; waiting for it to come back…");
        }
        let _ = std::io::stdout().flush();
        Ok(())
    };
    let done = enterprise::sign_in_then_obtain(server, url, &e, keychain().await?, open).await?;
    if let Some(email) = done.signed_in_as {
        println!("Signed in to the identity provider {} as {}", e.idp.issuer, email.as_deref().unwrap_or("(no email)"));
    }
    let got = done.obtained;
    println!(
        "Signed in to `{server}` with your company sign-in{} (no consent asked of you){}",
        got.issuer.map(|i| format!(" (authorization server {i})")).unwrap_or_default(),
        if got.scopes.is_empty() { String::new() } else { format!("; scopes: {}", got.scopes.join(" ")) }
    );
    Ok(0)
}

pub async fn logout(server: &str) -> Result<i32> {
    let out = oauth::sign_out(server, keychain().await?).await?;
    if !out.had_sign_in {
        bail!("no sign-in to `{server}` in the keychain");
    }
    println!("Signed out of `{server}`: {} token(s) revoked", out.revoked);
    if let Some(w) = out.warning {
        eprintln!("warning: {w}");
    }
    Ok(0)
}

pub async fn status(home: &Home, config: Option<PathBuf>, json: bool) -> Result<i32> {
    let path = config_path(home, config);
    let config = load_config(&path)?.ok_or_else(|| anyhow!("{}: no such config", path.display()))?;
    let mut rows = Vec::new();
    for (name, server) in &config.servers {
        if let Transport::Http { url, .. } = &server.transport {
            let state = ServerAuth::new(name, url).state().await;
            rows.push(serde_json::json!({"server": name, "url": url, "credentials": state}));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            // The credentials' state can hold text a remote server chose (its issuer, an
            // error): bidi and zero-width characters are shown as escapes.
            let server = countersign_policy::shown::visible(r["server"].as_str().unwrap_or_default()).into_owned();
            println!("{server:<16} {}", countersign_policy::shown::visible(&r["credentials"].to_string()));
        }
    }
    Ok(0)
}
