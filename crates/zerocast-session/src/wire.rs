//! Framing on a byte stream: a 4-byte big-endian length, then the message
//! (its kind byte and payload). Sans I/O: bytes go in as they arrive,
//! messages come out; a length past [`MAX_MESSAGE`] is refused before any
//! of it is buffered.

use std::marker::PhantomData;

use crate::message::{Message, MessageError, MAX_MESSAGE};

const LEN: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("message of {0} bytes, more than the {MAX_MESSAGE} allowed")]
    TooLong(usize),
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// Appends `msg` framed, ready to write.
pub fn encode<M: Message>(msg: &M, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; LEN]);
    msg.put(out);
    let len = u32::try_from(out.len() - start - LEN).unwrap_or(u32::MAX);
    out[start..start + LEN].copy_from_slice(&len.to_be_bytes());
}

/// Messages of type `M` out of a byte stream.
#[derive(Debug)]
pub struct Decoder<M> {
    buf: Vec<u8>,
    _message: PhantomData<M>,
}

impl<M> Default for Decoder<M> {
    fn default() -> Self {
        Decoder {
            buf: Vec::new(),
            _message: PhantomData,
        }
    }
}

impl<M: Message> Decoder<M> {
    /// Takes bytes as they arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `Ok(None)` until one is there. After an
    /// error the stream is out of step: close it.
    pub fn next_message(&mut self) -> Result<Option<M>, WireError> {
        let Some(header) = self.buf.first_chunk::<LEN>() else {
            return Ok(None);
        };
        let len = usize::try_from(u32::from_be_bytes(*header)).unwrap_or(usize::MAX);
        if len == 0 {
            return Err(WireError::Empty);
        }
        if len > MAX_MESSAGE {
            return Err(WireError::TooLong(len));
        }
        let Some(body) = self.buf.get(LEN..LEN + len) else {
            return Ok(None);
        };
        let msg = M::parse(body[0], &body[1..]);
        self.buf.drain(..LEN + len);
        Ok(Some(msg?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentMessage, HostMessage, MAX_CLIPBOARD};
    use proptest::prelude::*;

    #[test]
    fn messages_split_anywhere_come_out_whole() {
        let msgs = [
            HostMessage::Resize {
                width: 1280,
                height: 720,
            },
            HostMessage::Clipboard("x".repeat(MAX_CLIPBOARD)),
            HostMessage::Type("ü".into()),
        ];
        let mut bytes = Vec::new();
        for m in &msgs {
            encode(m, &mut bytes);
        }
        for chunk in [1, 3, 4096, bytes.len()] {
            let mut d = Decoder::<HostMessage>::default();
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                d.push(piece);
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, msgs);
        }
    }

    #[test]
    fn a_huge_length_is_refused_before_its_bytes() {
        let mut d = Decoder::<AgentMessage>::default();
        d.push(&u32::MAX.to_be_bytes());
        assert_eq!(d.next_message(), Err(WireError::TooLong(u32::MAX as usize)));
        let mut d = Decoder::<AgentMessage>::default();
        d.push(&[0, 0, 0, 0]);
        assert_eq!(d.next_message(), Err(WireError::Empty));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = Decoder::<HostMessage>::default();
            d.push(&bytes);
            for _ in 0..bytes.len() {
                if !matches!(d.next_message(), Ok(Some(_))) {
                    break;
                }
            }
        }
    }
}
