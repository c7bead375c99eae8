//! An upstream's stdout, framed into lines as the stdio upstream reads it (with its line
//! limit), each line that looks like JSON handled as a message.
#![no_main]

#[path = "common.rs"]
mod common;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, LinesCodec};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut codec = LinesCodec::new_with_max_length(4096);
    // Split the input at an arbitrary point, as pipe reads do.
    let cut = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let mut buf = BytesMut::new();
    for chunk in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(chunk);
        while let Ok(Some(line)) = codec.decode(&mut buf) {
            if line.trim_start().starts_with('{') {
                common::one_message(&line);
            }
        }
    }
    if let Ok(Some(line)) = codec.decode_eof(&mut buf) {
        common::one_message(&line);
    }
});
