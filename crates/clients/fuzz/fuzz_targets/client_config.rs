//! An AI client's config file, in the format and schema of the client the first byte
//! picks: read (never a panic), then every server found routed through Countersign and
//! put back. A route either is refused or succeeds, and what it routed, put back, gives
//! the original text byte for byte.
#![no_main]

use countersign_clients::client::locations;
use countersign_clients::rewrite::{restore, route, servers};
use countersign_clients::routing::{countersign_name, Delivery};
use countersign_clients::{Env, Os};
use std::path::PathBuf;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let env = Env::for_home(Os::Linux, PathBuf::from("/home/fuzz"), None, None);
    let all = locations(&env, &[]);
    let location = &all[usize::from(*pick) % all.len()];
    let Ok(found) = servers(location, text) else { return };
    let plan: Vec<_> = found
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let delivery = if i % 2 == 0 {
                Delivery::Shim {
                    program: "/usr/bin/countersign".into(),
                    server: countersign_name(&s.name),
                    home: "/data".into(),
                }
            } else {
                Delivery::Http {
                    url: format!("http://127.0.0.1:47800/mcp/{}", countersign_name(&s.name)),
                    token: "t".into(),
                }
            };
            (s.into(), delivery)
        })
        .collect();
    let Ok((routed, done)) = route(location, text, &plan) else { return };
    let back = restore(location, &routed, &done).expect("what was routed can be put back");
    assert_eq!(back, text, "routing then restoring gives the original back");
});
