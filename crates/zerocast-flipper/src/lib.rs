//! zerocast-flipper's picture as a library: [`scene`], frame `n` of the
//! test guest's animation as a pure function of `n`, so that a host that
//! reads a decoded frame's stamp can draw the very frame the guest drew
//! and measure how close the decoded picture is to it (`zerocast bench`'s
//! picture quality). The guest program itself (KMS, cursor, input) is
//! the binary.

#![forbid(unsafe_code)]

pub mod scene;
