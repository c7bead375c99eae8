//! Golden test data per client (`testdata/<client>/`): the client's own file as it would
//! be written (`original.*`), and the servers the inventory reads from it
//! (`servers.json`). Each file is placed where that client keeps it under a temporary
//! home (the Linux layout), and the inventory is compared byte for byte with the golden.
//! `UPDATE_GOLDEN=1` rewrites the goldens.

use countersign_clients::{inventory, ClientKind, Env, Os};
use std::path::{Path, PathBuf};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn original(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_stem().is_some_and(|s| s == "original"))
        .unwrap_or_else(|| panic!("{}: no original.*", dir.display()))
}

#[test]
fn every_clients_file_yields_its_golden_servers() {
    let home = tempfile::tempdir().unwrap();
    let env = Env::for_home(Os::Linux, home.path().to_path_buf(), None, None);
    let project = home.path().join("projects").join("shop");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::copy(testdata().join("project").join(".mcp.json"), project.join(".mcp.json")).unwrap();
    let gateway = Some("127.0.0.1:47800".parse().unwrap());

    for kind in ClientKind::ALL {
        let dir = testdata().join(kind.slug());
        let location =
            countersign_clients::client::locations(&env, &[]).into_iter().find(|l| l.client == kind).unwrap();
        std::fs::create_dir_all(location.path.parent().unwrap()).unwrap();
        std::fs::copy(original(&dir), &location.path).unwrap();
    }
    let reports = inventory(&env, std::slice::from_ref(&project), gateway);
    assert_eq!(reports.len(), ClientKind::ALL.len() + 1, "every client's file, and the project's");
    for kind in ClientKind::ALL {
        let mine: Vec<_> =
            reports.iter().filter(|r| r.client == kind && r.scope == countersign_clients::Scope::User).collect();
        let text =
            serde_json::to_string_pretty(&mine).unwrap().replace(&home.path().display().to_string(), "$HOME") + "\n";
        let golden = testdata().join(kind.slug()).join("servers.json");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &text).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&golden).unwrap(), text, "{}: UPDATE_GOLDEN=1 to accept", golden.display());
    }
    let project_report = reports.iter().find(|r| matches!(r.scope, countersign_clients::Scope::Project(_))).unwrap();
    assert_eq!(project_report.client, ClientKind::ClaudeCode);
    assert_eq!(project_report.servers[0].server.name, "sentry");
}

#[test]
fn slugs_are_the_json_names_and_read_back() {
    for kind in ClientKind::ALL {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.slug());
        assert_eq!(ClientKind::from_slug(kind.slug()), Some(kind));
    }
}

#[test]
fn a_file_that_does_not_parse_is_reported_not_skipped() {
    let home = tempfile::tempdir().unwrap();
    let env = Env::for_home(Os::Linux, home.path().to_path_buf(), None, None);
    std::fs::create_dir_all(home.path().join(".cursor")).unwrap();
    std::fs::write(home.path().join(".cursor").join("mcp.json"), "{ \"mcpServers\": { ").unwrap();
    let reports = inventory(&env, &[], None);
    assert_eq!(reports.len(), 1);
    let error = reports[0].error.as_deref().unwrap();
    assert!(error.contains(".cursor/mcp.json") && error.contains("not valid JSON"), "{error}");
}
