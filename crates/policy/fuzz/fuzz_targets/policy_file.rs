//! A managed policy file (the `[policy]` and `[managed]` tables, rules, globs, argument
//! conditions, classes, grants, `[policy.servers]`): read and compiled, it is accepted
//! or refused with an error, never a panic; a compiled policy decides a call.
#![no_main]

use countersign_policy::{CallInput, Identity, Layers, ManagedFile, Policy, ServerInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = toml::from_str::<ManagedFile>(text) else { return };
    let layers = Layers { user: file.policy.clone(), managed: Some(file), bundle: None };
    let Ok(policy) = Policy::from_layers(layers) else { return };
    let server = ServerInfo::named("github");
    let identity = Identity::default();
    let arguments = serde_json::json!({ "path": "/etc/passwd", "branch": "main" });
    let call = CallInput {
        identity: &identity,
        server: &server,
        tool: "delete_repo",
        def: None,
        arguments: &arguments,
        grants: None,
        resolved: None,
        gate: Default::default(),
        now_ms: 0,
    };
    let _ = policy.decide(&call);
    let _ = policy.server_blocked("github", &server.origin);
});
