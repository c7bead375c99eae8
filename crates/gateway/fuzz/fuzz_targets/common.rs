//! What the relay does with one message, whichever way it came: the deep check, the
//! envelope, the fields it reads; a parsed envelope written back parses to the same.

use countersign_gateway::message::{check, Envelope};

pub const MAX_DEPTH: usize = 64;

pub fn one_message(text: &str) {
    if check(text, MAX_DEPTH).is_err() {
        return;
    }
    let Ok(env) = Envelope::parse(text) else { return };
    let (kind, method, id) = (env.kind(), env.method().map(str::to_string), env.id_u64());
    let _ = env.params();
    let again = Envelope::parse(&env.to_json()).expect("a parsed envelope written back parses");
    assert!(again.kind() == kind && again.method().map(str::to_string) == method && again.id_u64() == id);
}
