//! The fuzz target's body, here so that the fuzzer (`fuzz/`, cargo-fuzz)
//! and an ordinary test replaying the corpus run the very same checks.

use bytes::BytesMut;

use crate::{encode, Decoder, Limits};

/// Decodes `data` as a stream (the first byte picks the chunk size) and
/// checks that every decoded packet re-encodes to bytes that decode to the
/// same packet. Panics on any violation.
pub fn check_decoder(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    for limits in [Limits::HOST, Limits::CLIENT] {
        let decoder = Decoder::new(limits);
        let mut buf = BytesMut::new();
        'stream: for piece in rest.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(packet)) => {
                        let mut again = BytesMut::new();
                        encode(&packet, &mut again);
                        let back = Decoder::new(Limits::CLIENT).decode(&mut again);
                        assert_eq!(back, Ok(Some(packet)), "re-encoded packet decodes the same");
                    }
                    Ok(None) => break,
                    Err(e) if e.is_fatal() => break 'stream,
                    Err(_) => {}
                }
            }
        }
    }
}
