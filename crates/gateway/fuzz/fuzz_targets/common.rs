//! What the relay does with one message, whichever way it came: the deep check, the
//! envelope, the fields it reads, the method table; a parsed envelope written back parses
//! to the same, and no governed request can leave without a permit.

use countersign_gateway::message::{check, Envelope};

pub const MAX_DEPTH: usize = 64;

pub fn one_message(text: &str) {
    if check(text, MAX_DEPTH).is_err() {
        return;
    }
    let Ok(env) = Envelope::parse(text) else { return };
    let (kind, method, id) = (env.kind(), env.method().map(str::to_string), env.id_u64());
    let _ = env.params();
    if let Some(m) = env.method() {
        if let Ok(op) = countersign_gateway::govern::methods::lookup(m, kind) {
            let plain = countersign_gateway::govern::Outbound::plain(&env);
            assert!(!op.is_governed() || plain.is_err(), "a governed request went out without a permit");
        }
    }
    let again = Envelope::parse(&env.to_json()).expect("a parsed envelope written back parses");
    assert!(again.kind() == kind && again.method().map(str::to_string) == method && again.id_u64() == id);
}
