//! Install and uninstall against a temporary home holding real clients' files (the
//! keychain is the test session's: run inside `scripts/keyring-session.sh`).

use super::*;
use countersign_clients::Os;

struct Setup {
    _dir: tempfile::TempDir,
    home: Home,
    config: PathBuf,
    env: Env,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::at(dir.path().join("data")).unwrap();
    let env = Env::for_home(Os::Linux, dir.path().join("home"), None, None);
    let config = dir.path().join("countersign.toml");
    Setup { home, config, env, _dir: dir }
}

fn options(client: ClientKind) -> Options {
    Options {
        clients: vec![client],
        projects: Vec::new(),
        program: "/usr/local/bin/countersign".into(),
        gateway: Some("127.0.0.1:47800".parse().unwrap()),
        approved: Vec::new(),
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn uninstall_gives_the_file_its_mode_back() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    let file = s.env.home.join(".cursor").join("mcp.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let original =
        "{\n  \"mcpServers\": {\n    \"time\": { \"command\": \"uvx\", \"args\": [\"mcp-server-time\"] }\n  }\n}\n";
    std::fs::write(&file, original).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mode = || std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    let policy = Policy::from_layers(Default::default()).unwrap();

    let out = install(&s.home, &s.config, &s.env, &policy, &options(ClientKind::Cursor), &no_env).await.unwrap();
    assert_eq!(out[0].error, None);
    assert_eq!(out[0].changed.len(), 1);
    assert_eq!(mode(), 0o600, "a file holding a client token is owner-only");
    assert_eq!(Record::load(&s.home).unwrap().entries[0].mode, Some(0o644), "the mode before is recorded");

    // A server added by hand and installed later: the mode kept is still the first one.
    let text = std::fs::read_to_string(&file).unwrap().replacen(
        "\"mcpServers\": {",
        "\"mcpServers\": {\n    \"fetch\": { \"command\": \"uvx\", \"args\": [\"mcp-server-fetch\"] },",
        1,
    );
    std::fs::write(&file, text).unwrap();
    let again = install(&s.home, &s.config, &s.env, &policy, &options(ClientKind::Cursor), &no_env).await.unwrap();
    assert_eq!(again[0].changed.len(), 1);
    assert!(Record::load(&s.home).unwrap().entries.iter().all(|e| e.mode == Some(0o644)));

    let back = uninstall(&s.home, &s.config, &s.env, &[ClientKind::Cursor]).await.unwrap();
    assert_eq!(back[0].error, None);
    assert_eq!(mode(), 0o644, "uninstall gives the mode back");
    let now = std::fs::read_to_string(&file).unwrap();
    assert!(now.contains("mcp-server-fetch") && now.contains("mcp-server-time") && !now.contains("47800"), "{now}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shim_entry_carries_the_program_and_the_data_folder() {
    let s = setup();
    let file = s.env.home.join(".config").join("Claude").join("claude_desktop_config.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "{\"mcpServers\": {\"time\": {\"command\": \"uvx\", \"args\": [\"mcp-server-time\"]}}}\n")
        .unwrap();
    let policy = Policy::from_layers(Default::default()).unwrap();
    let out = install(&s.home, &s.config, &s.env, &policy, &options(ClientKind::ClaudeDesktop), &no_env).await.unwrap();
    assert_eq!((out[0].error.as_deref(), out[0].changed.len()), (None, 1));
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let entry = &written["mcpServers"]["time"];
    assert_eq!(entry["command"], "/usr/local/bin/countersign");
    let data = s.home.dir().display().to_string();
    assert_eq!(entry["args"], serde_json::json!(["connect", "time", "--home", data]));
    assert!(std::path::Path::new(&data).is_absolute());
    assert!(entry.get("env").is_none(), "nothing for the client's environment to lose");
}

#[tokio::test(flavor = "multi_thread")]
async fn install_never_stores_over_a_keychain_item_it_did_not_make() {
    use countersign_vault::Account;
    let s = setup();
    let keychain = Keychain::open().await.expect("the session's keychain");
    let theirs = SecretName::new("ut15-brave-brave_api_key").unwrap();
    let _ = keychain.delete(&Account::Secret(theirs.numbered(2))).await;
    // Another config's server reads this item; this install's config does not name it.
    keychain.set(&Account::Secret(theirs.clone()), &Secret::new("their value".into())).await.unwrap();
    let file = s.env.home.join(".cursor").join("mcp.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        "{\"mcpServers\": {\"ut15-brave\": {\"command\": \"brave-mcp\", \"env\": {\"BRAVE_API_KEY\": \"mine\"}}}}\n",
    )
    .unwrap();
    let policy = Policy::from_layers(Default::default()).unwrap();
    let out = install(&s.home, &s.config, &s.env, &policy, &options(ClientKind::Cursor), &no_env).await.unwrap();
    assert_eq!((out[0].error.as_deref(), out[0].changed.len()), (None, 1));

    assert_eq!(keychain.secret(&theirs).await.unwrap().expose(), "their value", "left as it was");
    let ours = theirs.numbered(2);
    assert_eq!(keychain.secret(&ours).await.unwrap().expose(), "mine");
    let renamed = &out[0].renamed_secrets;
    assert_eq!((renamed[0].taken.as_str(), renamed[0].stored_as.as_str()), (theirs.as_str(), ours.as_str()));
    let config = Config::load(&s.config).unwrap();
    assert!(config.secret_uses().contains_key(&ours) && !config.secret_uses().contains_key(&theirs));
    let _ = keychain.delete(&Account::Secret(theirs)).await;
    let _ = keychain.delete(&Account::Secret(ours)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_projects_servers_are_routed_only_as_shown_and_only_for_that_project() {
    let s = setup();
    let repo = s._dir.path().join("cloned-repo");
    std::fs::create_dir_all(&repo).unwrap();
    let file = repo.join(".mcp.json");
    let original = "{\"mcpServers\": {\"helper\": {\"command\": \"sh\", \"args\": [\"-c\", \"touch /tmp/x\"]}}}\n";
    std::fs::write(&file, original).unwrap();
    let policy = Policy::from_layers(Default::default()).unwrap();
    let mut opts = Options { projects: vec![repo.clone()], ..options(ClientKind::ClaudeCode) };

    // Not agreed to: nothing changes.
    let out = install(&s.home, &s.config, &s.env, &policy, &opts, &no_env).await.unwrap();
    let mine = out.iter().find(|o| o.file == file.display().to_string()).unwrap();
    assert!(mine.changed.is_empty() && mine.skipped.len() == 1, "{mine:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    assert!(!s.config.exists(), "nothing added to Countersign's config");

    // Agreed to something else (the file changed since it was shown): nothing changes.
    let shown = review::project_servers(&s.env, &opts.projects, &opts.clients, opts.gateway);
    assert_eq!(shown.len(), 1);
    std::fs::write(&file, original.replace("/tmp/x", "/tmp/y")).unwrap();
    opts.approved = shown.clone();
    install(&s.home, &s.config, &s.env, &policy, &opts, &no_env).await.unwrap();
    assert!(!s.config.exists(), "a definition changed since it was shown is not routed");

    // Agreed to what it is: routed through the shim, scoped to the project, no token.
    std::fs::write(&file, original).unwrap();
    let out = install(&s.home, &s.config, &s.env, &policy, &opts, &no_env).await.unwrap();
    let mine = out.iter().find(|o| o.file == file.display().to_string()).unwrap();
    assert_eq!((mine.error.as_deref(), mine.changed[0].via), (None, "shim"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"connect\"") && !text.contains("cst_") && !text.contains("Bearer"), "{text}");
    let config = Config::load(&s.config).unwrap();
    let helper = &config.servers["helper"];
    assert_eq!(helper.project.as_deref(), Some(repo.as_path()));
    assert!(!helper.info.serves("client-claude-code") && helper.info.serves(&crate::tokens::project_token_name(&repo)));

    let back = uninstall(&s.home, &s.config, &s.env, &[ClientKind::ClaudeCode]).await.unwrap();
    assert!(back.iter().all(|o| o.error.is_none()));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    assert!(!Config::load(&s.config).unwrap().servers.contains_key("helper"));
}
