//! Golden test data for routing each client through Countersign
//! (`testdata/<client>/after-install.*` and `after-uninstall.*`): every shadow server in
//! the client's `original.*` is pointed at Countersign in the client's own syntax (the
//! stdio shim with the program's absolute path and the data folder, or the loopback URL
//! with a client token), byte for byte, with comments,
//! unknown keys and layout elsewhere kept; routing again changes nothing; putting the
//! originals back gives the original file byte for byte. `UPDATE_GOLDEN=1` rewrites them.
//! A project's own files (`testdata/project/<client>/`) always get the shim: nothing in a
//! repository's working tree may hold a token.

use countersign_clients::client::{locations, Location};
use countersign_clients::inventory::route_of;
use countersign_clients::rewrite::{restore, route, servers};
use countersign_clients::routing::{countersign_name, via_at, Delivery, Via};
use countersign_clients::{ClientKind, Env, Os, Route};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const GATEWAY: &str = "127.0.0.1:47800";
const PROGRAM: &str = "/usr/local/bin/countersign";
const DATA: &str = "/home/ana/.local/share/countersign";
const TOKEN: &str = "csk_example-client-token";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn file_named(dir: &Path, stem: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.file_stem().is_some_and(|s| s == stem))
}

fn check_golden(dir: &Path, stem: &str, extension: &str, text: &str) {
    let golden = dir.join(format!("{stem}.{extension}"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, text).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert_eq!(want, text, "{}: UPDATE_GOLDEN=1 to accept", golden.display());
}

fn plan(location: &Location, text: &str) -> Vec<(countersign_clients::edit::EntryPath, Delivery)> {
    let gateway: SocketAddr = GATEWAY.parse().unwrap();
    servers(location, text)
        .unwrap()
        .iter()
        .filter(|s| route_of(s, Some(gateway)) == Route::Shadow)
        .map(|s| {
            let name = countersign_name(&s.name);
            let delivery = match via_at(location) {
                Via::Shim => Delivery::Shim { program: PROGRAM.into(), server: name, home: DATA.into() },
                Via::Http => Delivery::Http { url: format!("http://{GATEWAY}/mcp/{name}"), token: TOKEN.into() },
            };
            (s.into(), delivery)
        })
        .collect()
}

#[test]
fn every_client_is_routed_and_put_back_byte_for_byte() {
    let env = Env::for_home(Os::Linux, PathBuf::from("/home/ana"), None, None);
    for kind in ClientKind::ALL {
        let dir = testdata().join(kind.slug());
        let original_path = file_named(&dir, "original").unwrap();
        let extension = original_path.extension().unwrap().to_str().unwrap().to_string();
        let original = std::fs::read_to_string(&original_path).unwrap();
        let location = locations(&env, &[]).into_iter().find(|l| l.client == kind).unwrap();

        let steps = plan(&location, &original);
        assert!(!steps.is_empty(), "{kind:?}: the golden original has a shadow server to route");
        let (installed, routed) = route(&location, &original, &steps).unwrap();
        check_golden(&dir, "after-install", &extension, &installed);

        // Every server now runs through Countersign; installing again has nothing to do.
        assert!(plan(&location, &installed).is_empty(), "{kind:?}: a server is still shadow after install");
        let before = servers(&location, &original).unwrap();
        let after = servers(&location, &installed).unwrap();
        assert_eq!(before.len(), after.len(), "{kind:?}: no server lost or added");
        for (b, a) in before.iter().zip(&after) {
            assert_eq!((&b.name, b.enabled), (&a.name, a.enabled), "{kind:?}: names and switches kept");
        }

        let uninstalled = restore(&location, &installed, &routed).unwrap();
        check_golden(&dir, "after-uninstall", &extension, &uninstalled);
        assert_eq!(uninstalled, original, "{kind:?}: uninstall gives the original back byte for byte");
    }
}

#[test]
fn every_project_file_is_routed_through_the_shim_and_holds_no_token() {
    let env = Env::for_home(Os::Linux, PathBuf::from("/home/ana"), None, None);
    let project = PathBuf::from("/home/ana/src/cloned-repo");
    let mut seen = Vec::new();
    for location in locations(&env, std::slice::from_ref(&project)).into_iter().filter(|l| l.path.starts_with(&project))
    {
        let dir = testdata().join("project").join(location.client.slug());
        let original_path = file_named(&dir, "original").unwrap();
        let extension = original_path.extension().unwrap().to_str().unwrap().to_string();
        let original = std::fs::read_to_string(&original_path).unwrap();

        let steps = plan(&location, &original);
        assert!(!steps.is_empty(), "{:?}: the golden original has a shadow server", location.client);
        assert!(steps.iter().all(|(_, d)| matches!(d, Delivery::Shim { .. })), "{:?}: only the shim", location.client);
        let (installed, routed) = route(&location, &original, &steps).unwrap();
        check_golden(&dir, "after-install", &extension, &installed);
        assert!(
            !installed.contains(TOKEN) && !installed.contains("Bearer"),
            "{:?}: no token in a project file",
            location.client
        );
        for s in servers(&location, &installed).unwrap() {
            assert_eq!(
                route_of(&s, Some(GATEWAY.parse().unwrap())),
                Route::Routed,
                "{:?}: {}",
                location.client,
                s.name
            );
            assert!(s.headers.is_empty(), "{:?}: {} keeps no header", location.client, s.name);
        }
        let uninstalled = restore(&location, &installed, &routed).unwrap();
        check_golden(&dir, "after-uninstall", &extension, &uninstalled);
        assert_eq!(uninstalled, original, "{:?}: put back byte for byte", location.client);
        seen.push(location.client);
    }
    assert_eq!(seen.len(), 5, "every client's project file is covered: {seen:?}");
}

#[test]
fn an_edit_that_would_change_more_than_its_entry_is_refused() {
    let env = Env::for_home(Os::Linux, PathBuf::from("/home/ana"), None, None);
    let location = locations(&env, &[]).into_iter().find(|l| l.client == ClientKind::Goose).unwrap();
    // A flow-style entry on its key line: the line view cannot edit it safely.
    let text = "extensions:\n  github: {cmd: npx, args: [x], enabled: true}\n  other:\n    cmd: y\n";
    let steps = plan(&location, text);
    let err = route(&location, text, &steps[..1]).unwrap_err();
    assert!(err.to_string().contains("left as it was"), "{err}");
}

#[test]
fn project_servers_in_claude_codes_user_file_are_routed_in_place() {
    let env = Env::for_home(Os::Linux, PathBuf::from("/home/ana"), None, None);
    let location = locations(&env, &[]).into_iter().find(|l| l.client == ClientKind::ClaudeCode).unwrap();
    let original = std::fs::read_to_string(testdata().join("claude-code").join("original.json")).unwrap();
    let (installed, _) = route(&location, &original, &plan(&location, &original)).unwrap();
    let postgres = servers(&location, &installed).unwrap().into_iter().find(|s| s.name == "postgres").unwrap();
    assert_eq!(postgres.project.as_deref(), Some("/home/ana/projects/shop"));
    assert_eq!(route_of(&postgres, Some(GATEWAY.parse().unwrap())), Route::Routed);
}
