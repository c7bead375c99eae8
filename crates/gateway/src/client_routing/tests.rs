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
