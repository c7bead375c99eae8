//! A file is routed only if what was routed can be put back byte for byte. Found by the
//! `client_config` fuzz target: a Goose config whose multi-line quoted string repeats a
//! server's key (`github:`) was routed, and putting it back then failed to find the entry.

use countersign_clients::client::locations;
use countersign_clients::rewrite::{restore, route, servers};
use countersign_clients::routing::{countersign_name, Delivery};
use countersign_clients::{Env, Os};
use std::path::PathBuf;

const TANGLED: &str = "\nGOOSE_PROVIDER: oponai\nextensions:\n  developer:\n    enableni)tin\n  github:\n    cmd: npx\n    args:\n      - -     - \"@modelcontextpextensions:\n  dmaoevelotpe: buiutin\n  in\n  github:  eithub\"\n  nsinabled: trues://mcp.example.com/mcp\n";

#[test]
fn a_file_that_could_not_be_put_back_is_not_routed() {
    let env = Env::for_home(Os::Linux, PathBuf::from("/home/fuzz"), None, None);
    let all = locations(&env, &[]);
    let location = &all[10 % all.len()];
    assert!(location.path.ends_with("goose/config.yaml"), "{}", location.path.display());
    let found = servers(location, TANGLED).expect("the file reads");
    let plan: Vec<_> = found
        .iter()
        .map(|s| {
            let delivery = Delivery::Shim {
                program: "/usr/bin/countersign".into(),
                server: countersign_name(&s.name),
                home: "/data".into(),
            };
            (s.into(), delivery)
        })
        .collect();
    assert!(!plan.is_empty());
    match route(location, TANGLED, &plan) {
        Err(e) => assert!(e.to_string().contains("left as it was"), "{e}"),
        Ok((routed, done)) => assert_eq!(restore(location, &routed, &done).unwrap(), TANGLED),
    }
}
