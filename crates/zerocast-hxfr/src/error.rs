//! What can go wrong reading HXFR, and the error codes it carries.

/// `HELIX_ERR_*`: the code in an ERROR message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Ok,
    InvalidMessage,
    ResourceNotFound,
    NotGpuTexture,
    NoShareableSurface,
    EncodeFailed,
    NotConfigured,
    Internal,
    /// A code this implementation does not know.
    Other(i32),
}

impl ErrorCode {
    pub fn code(self) -> i32 {
        match self {
            ErrorCode::Ok => 0,
            ErrorCode::InvalidMessage => -1,
            ErrorCode::ResourceNotFound => -2,
            ErrorCode::NotGpuTexture => -3,
            ErrorCode::NoShareableSurface => -4,
            ErrorCode::EncodeFailed => -5,
            ErrorCode::NotConfigured => -6,
            ErrorCode::Internal => -99,
            ErrorCode::Other(c) => c,
        }
    }

    pub fn from_code(c: i32) -> Self {
        match c {
            0 => ErrorCode::Ok,
            -1 => ErrorCode::InvalidMessage,
            -2 => ErrorCode::ResourceNotFound,
            -3 => ErrorCode::NotGpuTexture,
            -4 => ErrorCode::NoShareableSurface,
            -5 => ErrorCode::EncodeFailed,
            -6 => ErrorCode::NotConfigured,
            -99 => ErrorCode::Internal,
            c => ErrorCode::Other(c),
        }
    }
}

/// Why bytes could not be decoded.
///
/// A *fatal* error leaves the byte stream out of step (bad magic, a payload
/// too large to skip): the connection must be closed. Any other error has
/// consumed exactly one message, so the caller can answer ERROR and go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("bad magic {0:#010x}: not an HXFR stream")]
    BadMagic(u32),
    #[error("payload of {size} bytes exceeds the limit of {limit}")]
    PayloadTooLarge { size: u32, limit: u32 },
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    #[error("{msg:?} payload is {got} bytes, needs at least {need}")]
    ShortPayload {
        msg: crate::MsgType,
        got: u32,
        need: u32,
    },
    #[error("FRAME_RESPONSE claims {count} NAL units, more than the limit of {limit}")]
    TooManyNals { count: u32, limit: u32 },
    #[error("FRAME_RESPONSE NAL entry {index} runs past the end of the payload")]
    NalOverrun { index: u32 },
    #[error("CURSOR_IMAGE: {0}")]
    CursorImage(&'static str),
}

impl DecodeError {
    /// True when the stream cannot be resynchronised and must be closed.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            DecodeError::BadMagic(_) | DecodeError::PayloadTooLarge { .. }
        )
    }
}
