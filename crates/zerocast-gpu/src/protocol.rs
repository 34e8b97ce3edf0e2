//! virtio-gpu wire format (virtio 1.2, section 5.7): the structs a guest
//! driver puts in the control and cursor queues, laid out as on the wire
//! (little-endian, `repr(C)`, no implicit padding).

use vm_memory::{ByteValued, Le32, Le64};
use zerocast_frame::PixelFormat;

/// Device feature bits we offer (besides vhost-user's own).
pub const VIRTIO_F_VERSION_1: u32 = 32;
/// QEMU's virtio-pci offers queue reset itself (`queue_reset=on`) and passes
/// the guest's ack on; vhost-user-backend refuses acks of bits we did not
/// offer, so we offer it. Linux's virtio-gpu never resets a single queue.
pub const VIRTIO_F_RING_RESET: u32 = 40;
pub const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;
pub const VIRTIO_RING_F_EVENT_IDX: u32 = 29;
pub const VIRTIO_GPU_F_EDID: u32 = 1;

/// Queue indices.
pub const CONTROL_QUEUE: u16 = 0;
pub const CURSOR_QUEUE: u16 = 1;

/// Control queue commands (2D set).
pub const CMD_GET_DISPLAY_INFO: u32 = 0x0100;
pub const CMD_RESOURCE_CREATE_2D: u32 = 0x0101;
pub const CMD_RESOURCE_UNREF: u32 = 0x0102;
pub const CMD_SET_SCANOUT: u32 = 0x0103;
pub const CMD_RESOURCE_FLUSH: u32 = 0x0104;
pub const CMD_TRANSFER_TO_HOST_2D: u32 = 0x0105;
pub const CMD_RESOURCE_ATTACH_BACKING: u32 = 0x0106;
pub const CMD_RESOURCE_DETACH_BACKING: u32 = 0x0107;
pub const CMD_GET_EDID: u32 = 0x010a;
/// Cursor queue commands.
pub const CMD_UPDATE_CURSOR: u32 = 0x0300;
pub const CMD_MOVE_CURSOR: u32 = 0x0301;

/// Response types.
pub const RESP_OK_NODATA: u32 = 0x1100;
pub const RESP_OK_DISPLAY_INFO: u32 = 0x1101;
pub const RESP_OK_EDID: u32 = 0x1104;
pub const RESP_ERR_UNSPEC: u32 = 0x1200;
pub const RESP_ERR_OUT_OF_MEMORY: u32 = 0x1201;
pub const RESP_ERR_INVALID_SCANOUT_ID: u32 = 0x1202;
pub const RESP_ERR_INVALID_RESOURCE_ID: u32 = 0x1203;
pub const RESP_ERR_INVALID_PARAMETER: u32 = 0x1205;

/// `ctrl_hdr.flags`: the guest waits for this fence; echo it in the response.
pub const FLAG_FENCE: u32 = 1 << 0;
/// `ctrl_hdr.flags`: `ring_idx` is meaningful (echoed with the fence).
pub const FLAG_INFO_RING_IDX: u32 = 1 << 1;

/// Size of the `pmodes` array in a display-info response.
pub const WIRE_MAX_SCANOUTS: usize = 16;
/// Size of the EDID blob in a `GET_EDID` response.
pub const EDID_BLOB_SIZE: usize = 1024;

/// virtio-gpu 2D formats (`enum virtio_gpu_formats`) the host can read, and
/// their DRM equivalents. Formats with alpha or padding first in memory
/// (A8R8G8B8, X8B8G8R8...) have no [`PixelFormat`] and are refused.
pub fn pixel_format(virtio_format: u32) -> Option<PixelFormat> {
    match virtio_format {
        1 => Some(PixelFormat::Argb8888), // B8G8R8A8_UNORM: bytes B, G, R, A
        2 => Some(PixelFormat::Xrgb8888), // B8G8R8X8_UNORM: bytes B, G, R, X
        67 => Some(PixelFormat::Abgr8888), // R8G8B8A8_UNORM: bytes R, G, B, A
        134 => Some(PixelFormat::Xbgr8888), // R8G8B8X8_UNORM: bytes R, G, B, X
        _ => None,
    }
}

/// Declares wire structs and their `ByteValued` impls.
macro_rules! wire_structs {
    ($($(#[$meta:meta])* pub struct $name:ident { $(pub $field:ident: $ty:ty,)* })*) => {$(
        $(#[$meta])*
        #[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
        #[repr(C)]
        pub struct $name { $(pub $field: $ty,)* }

        // SAFETY: the struct is `repr(C)`, made only of integers and byte
        // arrays whose sizes leave no padding (checked by `wire_sizes` below),
        // so every byte pattern is a valid value.
        unsafe impl ByteValued for $name {}
    )*};
}

wire_structs! {
    /// `struct virtio_gpu_ctrl_hdr`: starts every command and response.
    pub struct CtrlHdr {
        pub type_: Le32,
        pub flags: Le32,
        pub fence_id: Le64,
        pub ctx_id: Le32,
        pub ring_idx: u8,
        pub padding: [u8; 3],
    }

    /// `struct virtio_gpu_rect`.
    pub struct WireRect {
        pub x: Le32,
        pub y: Le32,
        pub width: Le32,
        pub height: Le32,
    }

    /// `RESOURCE_CREATE_2D` body.
    pub struct ResourceCreate2d {
        pub resource_id: Le32,
        pub format: Le32,
        pub width: Le32,
        pub height: Le32,
    }

    /// Body of `RESOURCE_UNREF` and `RESOURCE_DETACH_BACKING` (a resource
    /// id) and of `GET_EDID` (a scanout id): one id and padding.
    pub struct IdBody {
        pub id: Le32,
        pub padding: Le32,
    }

    /// `SET_SCANOUT` body.
    pub struct SetScanout {
        pub r: WireRect,
        pub scanout_id: Le32,
        pub resource_id: Le32,
    }

    /// `RESOURCE_FLUSH` body.
    pub struct ResourceFlush {
        pub r: WireRect,
        pub resource_id: Le32,
        pub padding: Le32,
    }

    /// `TRANSFER_TO_HOST_2D` body.
    pub struct TransferToHost2d {
        pub r: WireRect,
        pub offset: Le64,
        pub resource_id: Le32,
        pub padding: Le32,
    }

    /// `RESOURCE_ATTACH_BACKING` body, followed by `nr_entries` [`MemEntry`]s.
    pub struct AttachBacking {
        pub resource_id: Le32,
        pub nr_entries: Le32,
    }

    /// `struct virtio_gpu_mem_entry`: one guest-physical chunk of backing.
    pub struct MemEntry {
        pub addr: Le64,
        pub length: Le32,
        pub padding: Le32,
    }

    /// `struct virtio_gpu_cursor_pos`.
    pub struct CursorPos {
        pub scanout_id: Le32,
        pub x: Le32,
        pub y: Le32,
        pub padding: Le32,
    }

    /// `UPDATE_CURSOR` / `MOVE_CURSOR` body.
    pub struct UpdateCursor {
        pub pos: CursorPos,
        pub resource_id: Le32,
        pub hot_x: Le32,
        pub hot_y: Le32,
        pub padding: Le32,
    }

    /// One entry of a display-info response.
    pub struct DisplayOne {
        pub r: WireRect,
        pub enabled: Le32,
        pub flags: Le32,
    }

    /// `struct virtio_gpu_config`: the device config space.
    pub struct ConfigSpace {
        pub events_read: Le32,
        pub events_clear: Le32,
        pub num_scanouts: Le32,
        pub num_capsets: Le32,
    }
}

impl CtrlHdr {
    /// A header of the given type, no flags.
    pub fn of_type(type_: u32) -> Self {
        CtrlHdr {
            type_: type_.into(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn wire_sizes() {
        // Sizes from linux/include/uapi/linux/virtio_gpu.h.
        assert_eq!(size_of::<CtrlHdr>(), 24);
        assert_eq!(size_of::<WireRect>(), 16);
        assert_eq!(size_of::<ResourceCreate2d>(), 16);
        assert_eq!(size_of::<IdBody>(), 8);
        assert_eq!(size_of::<SetScanout>(), 24);
        assert_eq!(size_of::<ResourceFlush>(), 24);
        assert_eq!(size_of::<TransferToHost2d>(), 32);
        assert_eq!(size_of::<AttachBacking>(), 8);
        assert_eq!(size_of::<MemEntry>(), 16);
        assert_eq!(size_of::<CursorPos>(), 16);
        assert_eq!(size_of::<UpdateCursor>(), 32);
        assert_eq!(size_of::<DisplayOne>(), 24);
        assert_eq!(size_of::<ConfigSpace>(), 16);
    }

    #[test]
    fn formats_map_by_byte_order() {
        assert_eq!(pixel_format(2), Some(PixelFormat::Xrgb8888));
        assert_eq!(pixel_format(1), Some(PixelFormat::Argb8888));
        assert_eq!(pixel_format(67), Some(PixelFormat::Abgr8888));
        assert_eq!(pixel_format(134), Some(PixelFormat::Xbgr8888));
        for alpha_first in [0, 3, 4, 68, 121, u32::MAX] {
            assert_eq!(pixel_format(alpha_first), None);
        }
    }
}
