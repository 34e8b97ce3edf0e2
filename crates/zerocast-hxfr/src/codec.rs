//! Framing: a byte stream in, [`Packet`]s out, and back.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::message::{get_c_string, put_frame_response_fixed, wire_u32};
use crate::{
    ConfigReq, CursorImage, CursorPosition, DecodeError, EnableScanout, ErrorMsg, FrameRequest,
    FrameResponse, Header, Message, MsgType, ScanoutResp, SubscribeResp, HEADER_LEN,
};

/// Hard limits, checked from the header before any payload is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload accepted; larger is a fatal error.
    pub max_payload: u32,
    /// Most NAL entries accepted in one FRAME_RESPONSE.
    pub max_nal_count: u32,
}

impl Limits {
    /// What a host accepts from guests and clients: requests are small; only
    /// a guest agent publishing its own stream sends access units, and a
    /// 1080p keyframe fits in far less than this.
    pub const HOST: Limits = Limits {
        max_payload: 4 * 1024 * 1024,
        max_nal_count: 64,
    };
    /// What a client accepts from a host: an access unit of a 4K keyframe at
    /// a high bitrate fits with room to spare.
    pub const CLIENT: Limits = Limits {
        max_payload: 32 * 1024 * 1024,
        max_nal_count: 4096,
    };
}

/// One message with its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub session_id: u16,
    pub flags: u8,
    pub message: Message,
}

impl Packet {
    pub fn new(session_id: u16, message: Message) -> Self {
        Packet {
            session_id,
            flags: 0,
            message,
        }
    }
}

/// Splits a byte stream into packets. Keeps no buffer of its own: the caller
/// owns the bytes (a socket's read buffer), so the same decoder serves
/// blocking, async and fuzz callers.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    limits: Limits,
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder { limits }
    }

    /// Bytes still needed before the next packet can be decoded, so callers
    /// can read exactly that much.
    pub fn wanted(&self, buf: &[u8]) -> usize {
        match peek_header(buf) {
            Some(Some(h)) if h.payload_size <= self.limits.max_payload => {
                (HEADER_LEN + h.payload_size as usize).saturating_sub(buf.len())
            }
            Some(_) => 0,
            None => HEADER_LEN - buf.len(),
        }
    }

    /// Takes one packet off the front of `buf`, or returns `Ok(None)` when
    /// more bytes are needed. On a non-fatal error the bad message has been
    /// consumed; on a fatal one the stream must be dropped.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let header = match peek_header(buf) {
            None => return Ok(None),
            Some(None) => {
                let magic = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                return Err(DecodeError::BadMagic(magic));
            }
            Some(Some(h)) => h,
        };
        if header.payload_size > self.limits.max_payload {
            return Err(DecodeError::PayloadTooLarge {
                size: header.payload_size,
                limit: self.limits.max_payload,
            });
        }
        let total = HEADER_LEN + header.payload_size as usize;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(header.payload_size as usize).freeze();
        let message = self.parse(&header, payload)?;
        Ok(Some(Packet {
            session_id: header.session_id,
            flags: header.flags,
            message,
        }))
    }

    fn parse(&self, header: &Header, mut p: Bytes) -> Result<Message, DecodeError> {
        let t =
            MsgType::from_u8(header.msg_type).ok_or(DecodeError::UnknownType(header.msg_type))?;
        let need = Message::min_payload(t);
        if header.payload_size < need {
            return Err(DecodeError::ShortPayload {
                msg: t,
                got: header.payload_size,
                need,
            });
        }
        // Lengths are checked above, so the fixed-size reads below cannot run out.
        Ok(match t {
            MsgType::FrameRequest => Message::FrameRequest(FrameRequest {
                resource_id: p.get_u32_le(),
                width: p.get_u32_le(),
                height: p.get_u32_le(),
                format: p.get_u32_le(),
                stride: p.get_u32_le(),
                pts_ns: p.get_i64_le(),
                duration_ns: p.get_i64_le(),
                force_keyframe: p.get_u8() != 0,
            }),
            MsgType::FrameResponse => Message::FrameResponse(self.parse_frame_response(p)?),
            MsgType::KeyframeReq => Message::KeyframeReq,
            MsgType::ConfigReq => Message::ConfigReq(ConfigReq {
                width: p.get_u32_le(),
                height: p.get_u32_le(),
                bitrate_bps: p.get_u32_le(),
                fps_num: p.get_u32_le(),
                fps_den: p.get_u32_le(),
                profile: p.get_u8(),
                level: p.get_u8(),
                realtime: p.get_u8() != 0,
            }),
            MsgType::ConfigResp => Message::ConfigResp,
            MsgType::Ping => Message::Ping,
            MsgType::Pong => Message::Pong,
            MsgType::EnableScanout => Message::EnableScanout(EnableScanout {
                scanout_id: p.get_u32_le(),
                width: p.get_u32_le(),
                height: p.get_u32_le(),
                refresh: p.get_u32_le(),
            }),
            MsgType::DisableScanout => Message::DisableScanout {
                scanout_id: p.get_u32_le(),
            },
            MsgType::ScanoutResp => Message::ScanoutResp(ScanoutResp {
                scanout_id: p.get_u32_le(),
                success: p.get_u32_le() != 0,
                connector: get_c_string(&p[..64]),
            }),
            MsgType::Subscribe => Message::Subscribe {
                scanout_id: p.get_u32_le(),
            },
            MsgType::SubscribeResp => Message::SubscribeResp(SubscribeResp {
                scanout_id: p.get_u32_le(),
                success: p.get_u32_le() != 0,
            }),
            MsgType::CursorImage => Message::CursorImage(parse_cursor_image(p)?),
            MsgType::CursorPosition => {
                let visible = p.get_u8() != 0;
                p.advance(3);
                Message::CursorPosition(CursorPosition {
                    visible,
                    x: p.get_i32_le(),
                    y: p.get_i32_le(),
                })
            }
            MsgType::Error => Message::Error(ErrorMsg {
                code: p.get_i32_le(),
                message: get_c_string(&p[..256]),
            }),
        })
    }

    fn parse_frame_response(&self, mut p: Bytes) -> Result<FrameResponse, DecodeError> {
        let pts_ns = p.get_i64_le();
        let dts_ns = p.get_i64_le();
        let is_keyframe = p.get_u8() != 0;
        p.advance(3);
        let count = p.get_u32_le();
        if count > self.limits.max_nal_count {
            return Err(DecodeError::TooManyNals {
                count,
                limit: self.limits.max_nal_count,
            });
        }
        // Each entry takes at least its 4-byte size, so `count` entries cannot
        // fit in fewer bytes: this bounds the allocation by the payload.
        let mut nals = Vec::with_capacity((count as usize).min(p.len() / 4));
        for index in 0..count {
            if p.len() < 4 {
                return Err(DecodeError::NalOverrun { index });
            }
            let size = p.get_u32_le() as usize;
            if size > p.len() {
                return Err(DecodeError::NalOverrun { index });
            }
            nals.push(p.split_to(size));
        }
        Ok(FrameResponse {
            pts_ns,
            dts_ns,
            is_keyframe,
            nals,
        })
    }
}

/// A CURSOR_IMAGE payload: a size within [`CursorImage::MAX_SIDE`], the
/// hotspot inside, exactly the pixels that size needs.
fn parse_cursor_image(mut p: Bytes) -> Result<CursorImage, DecodeError> {
    let [hot_x, hot_y, width, height] = [(); 4].map(|()| p.get_u16_le());
    let side = 1..=CursorImage::MAX_SIDE;
    if !side.contains(&width) || !side.contains(&height) {
        return Err(DecodeError::CursorImage("size outside 1..=128"));
    }
    if hot_x >= width || hot_y >= height {
        return Err(DecodeError::CursorImage("hotspot outside the image"));
    }
    if p.len() != usize::from(width) * usize::from(height) * 4 {
        return Err(DecodeError::CursorImage(
            "pixel bytes unlike width x height x 4",
        ));
    }
    Ok(CursorImage {
        hot_x,
        hot_y,
        width,
        height,
        rgba: p,
    })
}

/// `None`: fewer than 12 bytes; `Some(None)`: bad magic.
fn peek_header(buf: &[u8]) -> Option<Option<Header>> {
    let head: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    Some(Header::parse(head))
}

/// Appends a packet's header and payload to `dst`.
pub fn encode(packet: &Packet, dst: &mut BytesMut) {
    let len = packet.message.payload_len();
    dst.reserve(HEADER_LEN + len);
    put_header(
        dst,
        packet.message.msg_type(),
        packet.flags,
        packet.session_id,
        len,
    );
    packet.message.put_payload(dst);
}

/// Appends a FRAME_RESPONSE carrying `access_unit` as one entry, the way
/// helix's senders do, without building a [`Message`] (no copy of the
/// access unit besides the one into `dst`).
pub fn encode_frame_response(
    dst: &mut impl BufMut,
    session_id: u16,
    pts_ns: i64,
    dts_ns: i64,
    keyframe: bool,
    access_unit: &[u8],
) {
    let prefix = frame_response_prefix(session_id, pts_ns, dts_ns, keyframe, access_unit.len());
    dst.put_slice(&prefix);
    dst.put_slice(access_unit);
}

/// Bytes of a one-entry FRAME_RESPONSE before its access unit.
pub const FRAME_RESPONSE_PREFIX_LEN: usize = HEADER_LEN + FrameResponse::FIXED_LEN as usize + 4;

/// The header, fixed part and entry size of a FRAME_RESPONSE whose one
/// entry is an access unit of `au_len` bytes: a writer sends these and then
/// the access unit itself (a vectored write, no copy of the access unit).
pub fn frame_response_prefix(
    session_id: u16,
    pts_ns: i64,
    dts_ns: i64,
    keyframe: bool,
    au_len: usize,
) -> [u8; FRAME_RESPONSE_PREFIX_LEN] {
    let mut prefix = [0u8; FRAME_RESPONSE_PREFIX_LEN];
    let mut dst = &mut prefix[..];
    let len = FrameResponse::FIXED_LEN as usize + 4 + au_len;
    put_header(&mut dst, MsgType::FrameResponse, 0, session_id, len);
    put_frame_response_fixed(&mut dst, pts_ns, dts_ns, keyframe, 1);
    dst.put_u32_le(wire_u32(au_len));
    prefix
}

fn put_header(dst: &mut impl BufMut, t: MsgType, flags: u8, session_id: u16, len: usize) {
    let header = Header {
        msg_type: t as u8,
        flags,
        session_id,
        payload_size: wire_u32(len),
    };
    dst.put_slice(&header.to_bytes());
}
