//! The 12-byte header in front of every HXFR message.

/// `'HXFR'` read as a little-endian u32 (bytes `48 58 46 52`).
pub const MAGIC: u32 = 0x5246_5848;
/// Size of the header in bytes.
pub const HEADER_LEN: usize = 12;

/// Message type numbers (`HELIX_MSG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    FrameRequest = 0x01,
    FrameResponse = 0x02,
    KeyframeReq = 0x03,
    ConfigReq = 0x04,
    ConfigResp = 0x05,
    Ping = 0x10,
    Pong = 0x11,
    EnableScanout = 0x20,
    DisableScanout = 0x21,
    ScanoutResp = 0x22,
    Subscribe = 0x30,
    SubscribeResp = 0x31,
    /// zerocast's extension: the guest's cursor image, to a subscriber that
    /// asked ([`crate::FLAG_CURSOR`]).
    CursorImage = 0x50,
    /// zerocast's extension: the cursor's visibility and position.
    CursorPosition = 0x51,
    Error = 0xFF,
}

impl MsgType {
    pub fn from_u8(v: u8) -> Option<Self> {
        use MsgType::*;
        Some(match v {
            0x01 => FrameRequest,
            0x02 => FrameResponse,
            0x03 => KeyframeReq,
            0x04 => ConfigReq,
            0x05 => ConfigResp,
            0x10 => Ping,
            0x11 => Pong,
            0x20 => EnableScanout,
            0x21 => DisableScanout,
            0x22 => ScanoutResp,
            0x30 => Subscribe,
            0x31 => SubscribeResp,
            0x50 => CursorImage,
            0x51 => CursorPosition,
            0xFF => Error,
            _ => return None,
        })
    }
}

/// A decoded header. `msg_type` stays a raw byte so that unknown types can be
/// reported (and skipped) rather than lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub msg_type: u8,
    pub flags: u8,
    /// Stream multiplexing id; the scanout id in scanout mode.
    pub session_id: u16,
    pub payload_size: u32,
}

impl Header {
    /// Parses a header; `None` when the magic is wrong.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Option<Self> {
        let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        (magic == MAGIC).then(|| Header {
            msg_type: b[4],
            flags: b[5],
            session_id: u16::from_le_bytes([b[6], b[7]]),
            payload_size: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        })
    }

    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4] = self.msg_type;
        b[5] = self.flags;
        b[6..8].copy_from_slice(&self.session_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.payload_size.to_le_bytes());
        b
    }
}
