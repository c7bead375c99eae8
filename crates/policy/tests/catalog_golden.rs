//! Golden tests: the catalog against the real tool lists of the pinned fixture servers
//! (`tests/golden/<server>.tools.json`, captured from the packages pinned in
//! `fixtures/`; `tests/e2e/test_policy.py` checks the live servers still list exactly
//! these). Every tool must be known to the catalog, and its class must be the one in
//! `tests/golden/<server>.classes.txt`. Set `UPDATE_GOLDEN=1` to rewrite those files
//! after a deliberate catalog change, then review the diff.

use countersign_policy::{ClassSource, Policy, PolicySettings, ServerInfo, ServerOrigin, ToolDef};
use std::path::Path;

const SERVERS: &[(&str, &str)] = &[
    ("filesystem", "/fixtures/node_modules/.bin/mcp-server-filesystem"),
    ("memory", "/fixtures/node_modules/.bin/mcp-server-memory"),
    ("everything", "/fixtures/node_modules/.bin/mcp-server-everything"),
    ("git", "/fixtures/.venv/bin/mcp-server-git"),
    ("time", "/fixtures/.venv/bin/mcp-server-time"),
];

#[test]
fn the_catalog_knows_every_fixture_tool_and_classifies_it_as_recorded() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let policy = Policy::compile(&PolicySettings::default()).unwrap();
    let mut failures = Vec::new();
    for (name, command) in SERVERS {
        let listed: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(golden.join(format!("{name}.tools.json"))).unwrap()).unwrap();
        // Detected from the command line, the way the gateway sees a configured server.
        let server = ServerInfo {
            name: name.to_string(),
            origin: ServerOrigin::Command { command: command.to_string(), args: vec![] },
            trusted: false,
            catalog: None,
            scope: None,
        };
        let mut lines = Vec::new();
        for tool in &listed {
            let def = ToolDef::from_json(tool).unwrap();
            let c = policy.classify(&server, &def.name, Some(&def));
            if c.source != ClassSource::Catalog {
                failures.push(format!("{name}: `{}` is not in the catalog ({:?})", def.name, c.source));
            }
            lines.push(format!("{} {} {}", def.name, c.class, c.label.as_deref().unwrap_or("-")));
        }
        let text = lines.join("\n") + "\n";
        let path = golden.join(format!("{name}.classes.txt"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != text {
            failures.push(format!("{name}: classes differ from {}:\n{text}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
