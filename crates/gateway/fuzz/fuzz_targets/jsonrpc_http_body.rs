//! A POST body on the HTTP face: UTF-8, the deep check (duplicate keys, surrogates,
//! huge numbers, depth), the envelope. Refused or relayed, never a panic.
#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        common::one_message(text);
    }
});
