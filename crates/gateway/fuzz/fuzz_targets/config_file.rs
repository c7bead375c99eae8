//! Countersign's config file: accepted, or refused with a message naming the field,
//! never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = countersign_gateway::Config::parse(text, None) {
            assert!(!e.to_string().is_empty());
        }
    }
});
