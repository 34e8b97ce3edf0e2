//! Typed virtio-gpu commands decoded from a request's bytes, and responses
//! encoded back to bytes. Sans-IO: no queues or guest memory here.

use std::mem::size_of;

use vm_memory::{ByteValued, GuestAddress};

use crate::protocol::{
    self, AttachBacking, CtrlHdr, DisplayOne, IdBody, MemEntry, ResourceCreate2d, ResourceFlush,
    SetScanout, TransferToHost2d, UpdateCursor, WireRect,
};

/// Most backing entries one `RESOURCE_ATTACH_BACKING` may carry. A 8192x8192
/// resource in 4 KiB pages needs 65536; a Linux guest sends a few hundred
/// (its shmem allocator hands out large runs), so 16384 leaves room.
pub const MAX_BACKING_ENTRIES: u32 = 16384;

/// The largest request the device reads from a descriptor chain: an attach
/// with the most entries. Anything longer is cut here and fails to decode.
pub const MAX_REQUEST_BYTES: usize = size_of::<CtrlHdr>()
    + size_of::<AttachBacking>()
    + MAX_BACKING_ENTRIES as usize * size_of::<MemEntry>();

/// A rectangle in resource pixels, as the guest sent it (unchecked): the
/// same geometry the rest of zerocast uses.
pub use zerocast_frame::Rect;

impl From<WireRect> for Rect {
    fn from(r: WireRect) -> Self {
        Rect {
            x: r.x.into(),
            y: r.y.into(),
            width: r.width.into(),
            height: r.height.into(),
        }
    }
}

/// One guest-physical chunk of a resource's backing, as the guest sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackingEntry {
    pub addr: GuestAddress,
    pub len: u32,
}

/// A cursor command's payload (`UPDATE_CURSOR` uses all of it, `MOVE_CURSOR`
/// only the position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorCommand {
    pub scanout_id: u32,
    pub x: u32,
    pub y: u32,
    pub resource_id: u32,
    pub hot_x: u32,
    pub hot_y: u32,
}

/// A decoded command. Values are exactly what the guest sent: the device
/// checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    GetDisplayInfo,
    GetEdid {
        scanout_id: u32,
    },
    ResourceCreate2d {
        resource_id: u32,
        format: u32,
        width: u32,
        height: u32,
    },
    ResourceUnref {
        resource_id: u32,
    },
    SetScanout {
        scanout_id: u32,
        resource_id: u32,
        rect: Rect,
    },
    ResourceFlush {
        resource_id: u32,
        rect: Rect,
    },
    TransferToHost2d {
        resource_id: u32,
        rect: Rect,
        offset: u64,
    },
    AttachBacking {
        resource_id: u32,
        entries: Vec<BackingEntry>,
    },
    DetachBacking {
        resource_id: u32,
    },
    UpdateCursor(CursorCommand),
    MoveCursor(CursorCommand),
}

impl Command {
    /// The command's name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::GetDisplayInfo => "GET_DISPLAY_INFO",
            Command::GetEdid { .. } => "GET_EDID",
            Command::ResourceCreate2d { .. } => "RESOURCE_CREATE_2D",
            Command::ResourceUnref { .. } => "RESOURCE_UNREF",
            Command::SetScanout { .. } => "SET_SCANOUT",
            Command::ResourceFlush { .. } => "RESOURCE_FLUSH",
            Command::TransferToHost2d { .. } => "TRANSFER_TO_HOST_2D",
            Command::AttachBacking { .. } => "RESOURCE_ATTACH_BACKING",
            Command::DetachBacking { .. } => "RESOURCE_DETACH_BACKING",
            Command::UpdateCursor(_) => "UPDATE_CURSOR",
            Command::MoveCursor(_) => "MOVE_CURSOR",
        }
    }
}

/// Why a request's bytes are not a command this device runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("request of {got} bytes is shorter than the {needed} its type needs")]
    Truncated { needed: usize, got: usize },
    #[error("unsupported command type {0:#x}")]
    Unsupported(u32),
    #[error("{0} backing entries is more than the limit of {MAX_BACKING_ENTRIES}")]
    TooManyEntries(u32),
}

impl DecodeError {
    /// The response type the guest gets for this error.
    pub fn response_type(&self) -> u32 {
        match self {
            DecodeError::TooManyEntries(_) => protocol::RESP_ERR_INVALID_PARAMETER,
            DecodeError::Truncated { .. } | DecodeError::Unsupported(_) => {
                protocol::RESP_ERR_UNSPEC
            }
        }
    }
}

/// Reads a wire struct at `offset`, or says how many bytes were missing.
fn read_at<T: ByteValued + Default>(buf: &[u8], offset: usize) -> Result<T, DecodeError> {
    let needed = offset + size_of::<T>();
    let bytes = buf.get(offset..needed).ok_or(DecodeError::Truncated {
        needed,
        got: buf.len(),
    })?;
    let mut value = T::default();
    value.as_mut_slice().copy_from_slice(bytes);
    Ok(value)
}

/// The request header, if the request is long enough to have one.
pub fn decode_header(buf: &[u8]) -> Result<CtrlHdr, DecodeError> {
    read_at(buf, 0)
}

/// Decodes the command in a request (header included).
pub fn decode(buf: &[u8]) -> Result<Command, DecodeError> {
    let hdr: CtrlHdr = decode_header(buf)?;
    let body = size_of::<CtrlHdr>();
    let cursor = |b: UpdateCursor| CursorCommand {
        scanout_id: b.pos.scanout_id.into(),
        x: b.pos.x.into(),
        y: b.pos.y.into(),
        resource_id: b.resource_id.into(),
        hot_x: b.hot_x.into(),
        hot_y: b.hot_y.into(),
    };
    Ok(match u32::from(hdr.type_) {
        protocol::CMD_GET_DISPLAY_INFO => Command::GetDisplayInfo,
        protocol::CMD_GET_EDID => Command::GetEdid {
            scanout_id: read_at::<IdBody>(buf, body)?.id.into(),
        },
        protocol::CMD_RESOURCE_CREATE_2D => {
            let b: ResourceCreate2d = read_at(buf, body)?;
            Command::ResourceCreate2d {
                resource_id: b.resource_id.into(),
                format: b.format.into(),
                width: b.width.into(),
                height: b.height.into(),
            }
        }
        protocol::CMD_RESOURCE_UNREF => Command::ResourceUnref {
            resource_id: read_at::<IdBody>(buf, body)?.id.into(),
        },
        protocol::CMD_SET_SCANOUT => {
            let b: SetScanout = read_at(buf, body)?;
            Command::SetScanout {
                scanout_id: b.scanout_id.into(),
                resource_id: b.resource_id.into(),
                rect: b.r.into(),
            }
        }
        protocol::CMD_RESOURCE_FLUSH => {
            let b: ResourceFlush = read_at(buf, body)?;
            Command::ResourceFlush {
                resource_id: b.resource_id.into(),
                rect: b.r.into(),
            }
        }
        protocol::CMD_TRANSFER_TO_HOST_2D => {
            let b: TransferToHost2d = read_at(buf, body)?;
            Command::TransferToHost2d {
                resource_id: b.resource_id.into(),
                rect: b.r.into(),
                offset: b.offset.into(),
            }
        }
        protocol::CMD_RESOURCE_ATTACH_BACKING => {
            let b: AttachBacking = read_at(buf, body)?;
            let count = u32::from(b.nr_entries);
            if count > MAX_BACKING_ENTRIES {
                return Err(DecodeError::TooManyEntries(count));
            }
            let first = body + size_of::<AttachBacking>();
            let entries = (0..count as usize)
                .map(|i| {
                    let e: MemEntry = read_at(buf, first + i * size_of::<MemEntry>())?;
                    Ok(BackingEntry {
                        addr: GuestAddress(e.addr.into()),
                        len: e.length.into(),
                    })
                })
                .collect::<Result<Vec<_>, DecodeError>>()?;
            Command::AttachBacking {
                resource_id: b.resource_id.into(),
                entries,
            }
        }
        protocol::CMD_RESOURCE_DETACH_BACKING => Command::DetachBacking {
            resource_id: read_at::<IdBody>(buf, body)?.id.into(),
        },
        protocol::CMD_UPDATE_CURSOR => Command::UpdateCursor(cursor(read_at(buf, body)?)),
        protocol::CMD_MOVE_CURSOR => Command::MoveCursor(cursor(read_at(buf, body)?)),
        other => return Err(DecodeError::Unsupported(other)),
    })
}

/// One scanout's entry in a display-info response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayMode {
    pub width: u32,
    pub height: u32,
    pub enabled: bool,
}

/// A successful response's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    NoData,
    DisplayInfo(Vec<DisplayMode>),
    Edid(Vec<u8>),
}

/// Encodes a response of type `type_` with `payload` after the header,
/// echoing the request's fence so a guest waiting on it wakes up (commands
/// complete before the response is sent, so every fence is already done).
fn encode_with(request: &CtrlHdr, type_: u32, payload: &[u8]) -> Vec<u8> {
    let req_flags = u32::from(request.flags);
    let mut hdr = CtrlHdr::of_type(type_);
    if req_flags & protocol::FLAG_FENCE != 0 {
        hdr.flags = (req_flags & (protocol::FLAG_FENCE | protocol::FLAG_INFO_RING_IDX)).into();
        hdr.fence_id = request.fence_id;
        hdr.ctx_id = request.ctx_id;
        if req_flags & protocol::FLAG_INFO_RING_IDX != 0 {
            hdr.ring_idx = request.ring_idx;
        }
    }
    let mut out = Vec::with_capacity(size_of::<CtrlHdr>() + payload.len());
    out.extend_from_slice(hdr.as_slice());
    out.extend_from_slice(payload);
    out
}

impl Response {
    /// The response's bytes, header included.
    pub fn encode(&self, request: &CtrlHdr) -> Vec<u8> {
        match self {
            Response::NoData => encode_with(request, protocol::RESP_OK_NODATA, &[]),
            Response::DisplayInfo(modes) => {
                // The response has room for every scanout virtio-gpu allows;
                // the ones the device lacks stay zero (disabled).
                let mut pmodes = [DisplayOne::default(); protocol::WIRE_MAX_SCANOUTS as usize];
                for (one, m) in pmodes.iter_mut().zip(modes) {
                    *one = DisplayOne {
                        r: WireRect {
                            width: m.width.into(),
                            height: m.height.into(),
                            ..Default::default()
                        },
                        enabled: u32::from(m.enabled).into(),
                        flags: 0.into(),
                    };
                }
                let payload: Vec<u8> = pmodes
                    .iter()
                    .flat_map(|one| one.as_slice())
                    .copied()
                    .collect();
                encode_with(request, protocol::RESP_OK_DISPLAY_INFO, &payload)
            }
            Response::Edid(blob) => {
                let mut payload = vec![0u8; 8 + protocol::EDID_BLOB_SIZE];
                let len = blob.len().min(protocol::EDID_BLOB_SIZE);
                let size = u32::try_from(len).expect("EDID_BLOB_SIZE fits in u32");
                payload[..4].copy_from_slice(&size.to_le_bytes());
                payload[8..8 + len].copy_from_slice(&blob[..len]);
                encode_with(request, protocol::RESP_OK_EDID, &payload)
            }
        }
    }
}

/// Encodes an error response (`RESP_ERR_*`), echoing the fence.
pub fn encode_error(request: &CtrlHdr, response_type: u32) -> Vec<u8> {
    encode_with(request, response_type, &[])
}

/// Request builders: the inverse of [`decode`], for tests and the fuzzer,
/// which play the guest.
#[cfg(any(test, feature = "fuzzing"))]
pub mod build {
    use super::*;
    use vm_memory::Le32;

    fn request(type_: u32, body: &[u8]) -> Vec<u8> {
        let mut out = CtrlHdr::of_type(type_).as_slice().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn rect(r: Rect) -> WireRect {
        WireRect {
            x: r.x.into(),
            y: r.y.into(),
            width: r.width.into(),
            height: r.height.into(),
        }
    }

    fn id_body(type_: u32, id: u32) -> Vec<u8> {
        let b = IdBody {
            id: id.into(),
            padding: Le32::default(),
        };
        request(type_, b.as_slice())
    }

    pub fn get_display_info() -> Vec<u8> {
        request(protocol::CMD_GET_DISPLAY_INFO, &[])
    }

    pub fn get_edid(scanout_id: u32) -> Vec<u8> {
        id_body(protocol::CMD_GET_EDID, scanout_id)
    }

    pub fn create_2d(resource_id: u32, format: u32, width: u32, height: u32) -> Vec<u8> {
        let b = ResourceCreate2d {
            resource_id: resource_id.into(),
            format: format.into(),
            width: width.into(),
            height: height.into(),
        };
        request(protocol::CMD_RESOURCE_CREATE_2D, b.as_slice())
    }

    pub fn unref(resource_id: u32) -> Vec<u8> {
        id_body(protocol::CMD_RESOURCE_UNREF, resource_id)
    }

    pub fn detach(resource_id: u32) -> Vec<u8> {
        id_body(protocol::CMD_RESOURCE_DETACH_BACKING, resource_id)
    }

    pub fn attach(resource_id: u32, entries: &[(u64, u32)]) -> Vec<u8> {
        let b = AttachBacking {
            resource_id: resource_id.into(),
            nr_entries: u32::try_from(entries.len()).unwrap().into(),
        };
        let mut out = request(protocol::CMD_RESOURCE_ATTACH_BACKING, b.as_slice());
        for &(addr, len) in entries {
            let e = MemEntry {
                addr: addr.into(),
                length: len.into(),
                padding: Le32::default(),
            };
            out.extend_from_slice(e.as_slice());
        }
        out
    }

    pub fn set_scanout(scanout_id: u32, resource_id: u32, r: Rect) -> Vec<u8> {
        let b = SetScanout {
            r: rect(r),
            scanout_id: scanout_id.into(),
            resource_id: resource_id.into(),
        };
        request(protocol::CMD_SET_SCANOUT, b.as_slice())
    }

    pub fn transfer(resource_id: u32, r: Rect, offset: u64) -> Vec<u8> {
        let b = TransferToHost2d {
            r: rect(r),
            offset: offset.into(),
            resource_id: resource_id.into(),
            padding: Le32::default(),
        };
        request(protocol::CMD_TRANSFER_TO_HOST_2D, b.as_slice())
    }

    pub fn flush(resource_id: u32, r: Rect) -> Vec<u8> {
        let b = ResourceFlush {
            r: rect(r),
            resource_id: resource_id.into(),
            padding: Le32::default(),
        };
        request(protocol::CMD_RESOURCE_FLUSH, b.as_slice())
    }

    pub fn cursor(type_: u32, scanout_id: u32, x: u32, y: u32, resource_id: u32) -> Vec<u8> {
        let b = UpdateCursor {
            pos: protocol::CursorPos {
                scanout_id: scanout_id.into(),
                x: x.into(),
                y: y.into(),
                padding: Le32::default(),
            },
            resource_id: resource_id.into(),
            ..Default::default()
        };
        request(type_, b.as_slice())
    }

    /// UPDATE_CURSOR with a hotspot.
    pub fn update_cursor(
        scanout_id: u32,
        at: (u32, u32),
        resource_id: u32,
        hot: (u32, u32),
    ) -> Vec<u8> {
        let b = UpdateCursor {
            pos: protocol::CursorPos {
                scanout_id: scanout_id.into(),
                x: at.0.into(),
                y: at.1.into(),
                padding: Le32::default(),
            },
            resource_id: resource_id.into(),
            hot_x: hot.0.into(),
            hot_y: hot.1.into(),
            padding: Le32::default(),
        };
        request(protocol::CMD_UPDATE_CURSOR, b.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::rect;

    #[test]
    fn decodes_what_the_builders_encode() {
        let r = rect(1, 2, 3, 4);
        assert_eq!(
            decode(&build::set_scanout(1, 7, r)),
            Ok(Command::SetScanout {
                scanout_id: 1,
                resource_id: 7,
                rect: r
            })
        );
        assert_eq!(
            decode(&build::attach(3, &[(0x1000, 4096), (0x8000, 100)])),
            Ok(Command::AttachBacking {
                resource_id: 3,
                entries: vec![
                    BackingEntry {
                        addr: GuestAddress(0x1000),
                        len: 4096
                    },
                    BackingEntry {
                        addr: GuestAddress(0x8000),
                        len: 100
                    },
                ],
            })
        );
        assert_eq!(
            decode(&build::transfer(5, r, 77)),
            Ok(Command::TransferToHost2d {
                resource_id: 5,
                rect: r,
                offset: 77
            })
        );
    }

    #[test]
    fn rejects_short_unknown_and_oversized_requests() {
        assert!(matches!(
            decode(&[0u8; 10]),
            Err(DecodeError::Truncated { .. })
        ));
        let mut short = build::create_2d(1, 2, 3, 4);
        short.truncate(30);
        assert!(matches!(decode(&short), Err(DecodeError::Truncated { .. })));
        // An attach that promises more entries than it carries.
        let mut lying = build::attach(1, &[(0, 4096)]);
        lying[28..32].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(decode(&lying), Err(DecodeError::Truncated { .. })));
        lying[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&lying), Err(DecodeError::TooManyEntries(u32::MAX)));
        let virgl_ctx_create = CtrlHdr::of_type(0x0200).as_slice().to_vec();
        assert_eq!(
            decode(&virgl_ctx_create),
            Err(DecodeError::Unsupported(0x0200))
        );
    }

    #[test]
    fn responses_echo_the_fence() {
        let mut req = CtrlHdr::of_type(protocol::CMD_RESOURCE_FLUSH);
        req.flags = (protocol::FLAG_FENCE | protocol::FLAG_INFO_RING_IDX).into();
        req.fence_id = 42.into();
        req.ring_idx = 3;
        let resp = decode_header(&Response::NoData.encode(&req)).unwrap();
        assert_eq!(u32::from(resp.type_), protocol::RESP_OK_NODATA);
        assert_eq!(u64::from(resp.fence_id), 42);
        assert_eq!(resp.ring_idx, 3);
        let unfenced = CtrlHdr::of_type(protocol::CMD_RESOURCE_FLUSH);
        let resp = decode_header(&encode_error(&unfenced, protocol::RESP_ERR_UNSPEC)).unwrap();
        assert_eq!(u32::from(resp.flags), 0);
        assert_eq!(u32::from(resp.type_), protocol::RESP_ERR_UNSPEC);
    }

    #[test]
    fn display_info_has_sixteen_slots() {
        let modes = vec![DisplayMode {
            width: 1280,
            height: 800,
            enabled: true,
        }];
        let bytes = Response::DisplayInfo(modes).encode(&CtrlHdr::default());
        assert_eq!(bytes.len(), 24 + 16 * 24);
        assert_eq!(&bytes[24 + 8..24 + 12], &1280u32.to_le_bytes());
        assert_eq!(&bytes[24 + 16..24 + 20], &1u32.to_le_bytes());
        let edid = Response::Edid(vec![1; 128]).encode(&CtrlHdr::default());
        assert_eq!(edid.len(), 24 + 8 + 1024);
        assert_eq!(&edid[24..28], &128u32.to_le_bytes());
    }
}
