//! HXFR payloads, field for field as helix packs them (little-endian, no padding).

use bytes::{BufMut, Bytes};

use crate::MsgType;

/// FRAME_REQUEST (guest to host): encode this resource (44 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameRequest {
    pub resource_id: u32,
    pub width: u32,
    pub height: u32,
    /// DRM fourcc.
    pub format: u32,
    pub stride: u32,
    pub pts_ns: i64,
    pub duration_ns: i64,
    pub force_keyframe: bool,
}

impl FrameRequest {
    pub const LEN: u32 = 44;
}

/// FRAME_RESPONSE (host to client): one encoded access unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameResponse {
    pub pts_ns: i64,
    pub dts_ns: i64,
    pub is_keyframe: bool,
    /// NAL data entries. helix sends one entry holding the whole Annex B
    /// access unit; readers accept any number.
    pub nals: Vec<Bytes>,
}

impl FrameResponse {
    /// Fixed part before the NAL entries.
    pub const FIXED_LEN: u32 = 24;
}

/// CONFIG_REQ (client to host): encoder parameters (28 bytes). Zero
/// width/height means "keep".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigReq {
    pub width: u32,
    pub height: u32,
    pub bitrate_bps: u32,
    pub fps_num: u32,
    pub fps_den: u32,
    /// H.264 profile_idc: 66 baseline, 77 main, 100 high.
    pub profile: u8,
    /// level_idc x10, e.g. 40 for 4.0.
    pub level: u8,
    pub realtime: bool,
}

impl ConfigReq {
    pub const LEN: u32 = 28;
}

/// ENABLE_SCANOUT (manager to host): hot-plug a display (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EnableScanout {
    pub scanout_id: u32,
    pub width: u32,
    pub height: u32,
    pub refresh: u32,
}

impl EnableScanout {
    pub const LEN: u32 = 16;
}

/// SCANOUT_RESP (host to manager): result of ENABLE_SCANOUT (72 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanoutResp {
    pub scanout_id: u32,
    pub success: bool,
    /// Connector name, e.g. `Virtual-1`; at most 63 bytes go on the wire.
    pub connector: String,
}

impl ScanoutResp {
    pub const LEN: u32 = 72;
}

/// SUBSCRIBE_RESP (host to client, 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscribeResp {
    pub scanout_id: u32,
    pub success: bool,
}

impl SubscribeResp {
    pub const LEN: u32 = 8;
}

/// ERROR (host to client, 260 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorMsg {
    pub code: i32,
    /// Human-readable reason; at most 255 bytes go on the wire.
    pub message: String,
}

impl ErrorMsg {
    pub const LEN: u32 = 260;
}

/// CURSOR_IMAGE (host to subscriber, zerocast's extension): hotspot x, y,
/// width, height (u16 each), then the image: RGBA, straight alpha, row by
/// row (8 + width x height x 4 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CursorImage {
    pub hot_x: u16,
    pub hot_y: u16,
    pub width: u16,
    pub height: u16,
    pub rgba: Bytes,
}

impl CursorImage {
    pub const FIXED_LEN: u32 = 8;
    /// The largest side of a cursor image (virtio-gpu's are 64x64).
    pub const MAX_SIDE: u16 = 128;
}

/// CURSOR_POSITION (host to subscriber, zerocast's extension): visible
/// (u8, 0 when the guest shows no hardware cursor), 3 bytes padding, then
/// the hotspot's x and y in picture pixels (i32 each; may lie off the
/// picture). 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CursorPosition {
    pub visible: bool,
    pub x: i32,
    pub y: i32,
}

impl CursorPosition {
    pub const LEN: u32 = 12;
}

/// Any HXFR message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    FrameRequest(FrameRequest),
    FrameResponse(FrameResponse),
    KeyframeReq,
    ConfigReq(ConfigReq),
    ConfigResp,
    Ping,
    Pong,
    EnableScanout(EnableScanout),
    DisableScanout { scanout_id: u32 },
    ScanoutResp(ScanoutResp),
    Subscribe { scanout_id: u32 },
    SubscribeResp(SubscribeResp),
    CursorImage(CursorImage),
    CursorPosition(CursorPosition),
    Error(ErrorMsg),
}

impl Message {
    pub fn msg_type(&self) -> MsgType {
        match self {
            Message::FrameRequest(_) => MsgType::FrameRequest,
            Message::FrameResponse(_) => MsgType::FrameResponse,
            Message::KeyframeReq => MsgType::KeyframeReq,
            Message::ConfigReq(_) => MsgType::ConfigReq,
            Message::ConfigResp => MsgType::ConfigResp,
            Message::Ping => MsgType::Ping,
            Message::Pong => MsgType::Pong,
            Message::EnableScanout(_) => MsgType::EnableScanout,
            Message::DisableScanout { .. } => MsgType::DisableScanout,
            Message::ScanoutResp(_) => MsgType::ScanoutResp,
            Message::Subscribe { .. } => MsgType::Subscribe,
            Message::SubscribeResp(_) => MsgType::SubscribeResp,
            Message::CursorImage(_) => MsgType::CursorImage,
            Message::CursorPosition(_) => MsgType::CursorPosition,
            Message::Error(_) => MsgType::Error,
        }
    }

    /// Smallest payload this message type can have on the wire.
    pub fn min_payload(t: MsgType) -> u32 {
        match t {
            MsgType::FrameRequest => FrameRequest::LEN,
            MsgType::FrameResponse => FrameResponse::FIXED_LEN,
            MsgType::ConfigReq => ConfigReq::LEN,
            MsgType::EnableScanout => EnableScanout::LEN,
            MsgType::DisableScanout | MsgType::Subscribe => 4,
            MsgType::ScanoutResp => ScanoutResp::LEN,
            MsgType::SubscribeResp => SubscribeResp::LEN,
            MsgType::CursorImage => CursorImage::FIXED_LEN,
            MsgType::CursorPosition => CursorPosition::LEN,
            MsgType::Error => ErrorMsg::LEN,
            MsgType::KeyframeReq | MsgType::ConfigResp | MsgType::Ping | MsgType::Pong => 0,
        }
    }

    /// Payload size this message encodes to.
    pub fn payload_len(&self) -> usize {
        match self {
            Message::FrameResponse(r) => {
                FrameResponse::FIXED_LEN as usize
                    + r.nals.iter().map(|n| 4 + n.len()).sum::<usize>()
            }
            Message::CursorImage(c) => CursorImage::FIXED_LEN as usize + c.rgba.len(),
            m => Self::min_payload(m.msg_type()) as usize,
        }
    }

    /// Appends the payload (no header).
    pub(crate) fn put_payload(&self, b: &mut impl BufMut) {
        match self {
            Message::FrameRequest(r) => {
                for v in [r.resource_id, r.width, r.height, r.format, r.stride] {
                    b.put_u32_le(v);
                }
                b.put_i64_le(r.pts_ns);
                b.put_i64_le(r.duration_ns);
                b.put_u8(r.force_keyframe.into());
                b.put_bytes(0, 7);
            }
            Message::FrameResponse(r) => {
                put_frame_response_fixed(
                    b,
                    r.pts_ns,
                    r.dts_ns,
                    r.is_keyframe,
                    wire_u32(r.nals.len()),
                );
                for nal in &r.nals {
                    b.put_u32_le(wire_u32(nal.len()));
                    b.put_slice(nal);
                }
            }
            Message::ConfigReq(c) => {
                for v in [c.width, c.height, c.bitrate_bps, c.fps_num, c.fps_den] {
                    b.put_u32_le(v);
                }
                b.put_u8(c.profile);
                b.put_u8(c.level);
                b.put_u8(c.realtime.into());
                b.put_bytes(0, 5);
            }
            Message::EnableScanout(e) => {
                for v in [e.scanout_id, e.width, e.height, e.refresh] {
                    b.put_u32_le(v);
                }
            }
            Message::DisableScanout { scanout_id } | Message::Subscribe { scanout_id } => {
                b.put_u32_le(*scanout_id)
            }
            Message::ScanoutResp(r) => {
                b.put_u32_le(r.scanout_id);
                b.put_u32_le(r.success.into());
                put_c_string(b, &r.connector, 64);
            }
            Message::SubscribeResp(r) => {
                b.put_u32_le(r.scanout_id);
                b.put_u32_le(r.success.into());
            }
            Message::CursorImage(c) => {
                for v in [c.hot_x, c.hot_y, c.width, c.height] {
                    b.put_u16_le(v);
                }
                b.put_slice(&c.rgba);
            }
            Message::CursorPosition(c) => {
                b.put_u8(c.visible.into());
                b.put_bytes(0, 3);
                b.put_i32_le(c.x);
                b.put_i32_le(c.y);
            }
            Message::Error(e) => {
                b.put_i32_le(e.code);
                put_c_string(b, &e.message, 256);
            }
            Message::KeyframeReq | Message::ConfigResp | Message::Ping | Message::Pong => {}
        }
    }
}

/// A size or count as the wire's `u32`. The encoders check the whole payload
/// length against `u32` before writing it, so any part of it fits too.
pub(crate) fn wire_u32(n: usize) -> u32 {
    u32::try_from(n).expect("HXFR payloads are far below 4 GiB")
}

pub(crate) fn put_frame_response_fixed(
    b: &mut impl BufMut,
    pts_ns: i64,
    dts_ns: i64,
    keyframe: bool,
    nal_count: u32,
) {
    b.put_i64_le(pts_ns);
    b.put_i64_le(dts_ns);
    b.put_u8(keyframe.into());
    b.put_bytes(0, 3);
    b.put_u32_le(nal_count);
}

/// A NUL-terminated string in a fixed field, cut at a UTF-8 boundary.
fn put_c_string(b: &mut impl BufMut, s: &str, field: usize) {
    let mut end = s.len().min(field - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    b.put_slice(&s.as_bytes()[..end]);
    b.put_bytes(0, field - end);
}

/// Reads a NUL-terminated string from a fixed field. Bytes that are not
/// UTF-8 become U+FFFD; the result is cut so that it still fits the field
/// when sent again (replacement characters are wider than the bytes they
/// replace).
pub(crate) fn get_c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    let mut s = String::from_utf8_lossy(&field[..end]).into_owned();
    let mut max = field.len().saturating_sub(1);
    while max < s.len() && !s.is_char_boundary(max) {
        max -= 1;
    }
    s.truncate(max);
    s
}
