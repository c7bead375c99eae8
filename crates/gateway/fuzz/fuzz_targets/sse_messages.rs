//! An SSE response body from a remote upstream (or the gateway, for the shim), cut into
//! chunks at arbitrary points: the events the relay takes as messages, each handled as
//! one. Never a panic, and no message over the limit gets through.
#![no_main]

#[path = "common.rs"]
mod common;

use countersign_gateway::sse_client::for_each_message;

const LIMIT: usize = 2048;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let step = data.first().map_or(1, |b| usize::from(*b % 31) + 1);
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
        data.chunks(step).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
    let mut stream = sse_stream::SseStream::from_bytes_stream(futures::stream::iter(chunks));
    futures::executor::block_on(for_each_message(&mut stream, LIMIT, |text| {
        assert!(text.len() <= LIMIT);
        common::one_message(&text);
        true
    }));
});
