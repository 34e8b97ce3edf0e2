//! virtio-gpu wire format (virtio 1.2, section 5.7): the structs a guest
//! driver puts in the control and cursor queues, laid out as on the wire
//! (little-endian, `repr(C)`, no implicit padding).

use virtio_bindings::virtio_gpu as gpu;
use vm_memory::{ByteValued, Le32, Le64};
use zerocast_frame::PixelFormat;

// Every number below is the kernel header's (`linux/virtio_gpu.h` and
// friends) as rust-vmm's `virtio-bindings` publishes it; only the names are
// shortened here.

// Device feature bits we offer (besides vhost-user's own). RING_RESET:
// QEMU's virtio-pci offers queue reset itself (`queue_reset=on`) and passes
// the guest's ack on; vhost-user-backend refuses acks of bits we did not
// offer, so we offer it. Linux's virtio-gpu never resets a single queue.
pub use gpu::VIRTIO_GPU_F_EDID;
pub use virtio_bindings::virtio_config::{VIRTIO_F_RING_RESET, VIRTIO_F_VERSION_1};
pub use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};

/// Queue indices.
pub const CONTROL_QUEUE: u16 = 0;
pub const CURSOR_QUEUE: u16 = 1;

/// Control queue commands (2D set).
pub use gpu::{
    virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_GET_DISPLAY_INFO as CMD_GET_DISPLAY_INFO,
    virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_GET_EDID as CMD_GET_EDID,
    virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING as CMD_RESOURCE_ATTACH_BACKING,
    virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_CREATE_2D as CMD_RESOURCE_CREATE_2D,
    virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING as CMD_RESOURCE_DETACH_BACKING,
    virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_FLUSH as CMD_RESOURCE_FLUSH,
    virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_UNREF as CMD_RESOURCE_UNREF,
    virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_SET_SCANOUT as CMD_SET_SCANOUT,
    virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D as CMD_TRANSFER_TO_HOST_2D,
};
/// Cursor queue commands.
pub use gpu::{
    virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_MOVE_CURSOR as CMD_MOVE_CURSOR,
    virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_UPDATE_CURSOR as CMD_UPDATE_CURSOR,
};

/// Response types.
pub use gpu::{
    virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER as RESP_ERR_INVALID_PARAMETER,
    virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID as RESP_ERR_INVALID_RESOURCE_ID,
    virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID as RESP_ERR_INVALID_SCANOUT_ID,
    virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY as RESP_ERR_OUT_OF_MEMORY,
    virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_UNSPEC as RESP_ERR_UNSPEC,
    virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_DISPLAY_INFO as RESP_OK_DISPLAY_INFO,
    virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_EDID as RESP_OK_EDID,
    virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_NODATA as RESP_OK_NODATA,
};

/// `ctrl_hdr.flags`: the guest waits for this fence; echo it in the response.
pub use gpu::VIRTIO_GPU_FLAG_FENCE as FLAG_FENCE;
/// `ctrl_hdr.flags`: `ring_idx` is meaningful (echoed with the fence).
pub use gpu::VIRTIO_GPU_FLAG_INFO_RING_IDX as FLAG_INFO_RING_IDX;

/// Size of the `pmodes` array in a display-info response.
pub use gpu::VIRTIO_GPU_MAX_SCANOUTS as WIRE_MAX_SCANOUTS;
/// Size of the EDID blob in a `GET_EDID` response.
pub const EDID_BLOB_SIZE: usize = std::mem::size_of::<gpu::virtio_gpu_resp_edid>()
    - std::mem::offset_of!(gpu::virtio_gpu_resp_edid, edid);

/// virtio-gpu 2D formats (`enum virtio_gpu_formats`) the host can read, and
/// their DRM equivalents. Formats with alpha or padding first in memory
/// (A8R8G8B8, X8B8G8R8...) have no [`PixelFormat`] and are refused.
pub fn pixel_format(virtio_format: u32) -> Option<PixelFormat> {
    match virtio_format {
        // Bytes B, G, R, A.
        gpu::virtio_gpu_formats_VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM => Some(PixelFormat::Argb8888),
        // Bytes B, G, R, X.
        gpu::virtio_gpu_formats_VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM => Some(PixelFormat::Xrgb8888),
        // Bytes R, G, B, A.
        gpu::virtio_gpu_formats_VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM => Some(PixelFormat::Abgr8888),
        // Bytes R, G, B, X.
        gpu::virtio_gpu_formats_VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM => Some(PixelFormat::Xbgr8888),
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

    /// A command's or response's size without its header.
    fn body<T>() -> usize {
        size_of::<T>() - size_of::<gpu::virtio_gpu_ctrl_hdr>()
    }

    #[test]
    fn wire_sizes() {
        // Our structs leave the header out of each body; the bindings' do not.
        assert_eq!(size_of::<CtrlHdr>(), size_of::<gpu::virtio_gpu_ctrl_hdr>());
        assert_eq!(size_of::<WireRect>(), size_of::<gpu::virtio_gpu_rect>());
        assert_eq!(
            size_of::<ResourceCreate2d>(),
            body::<gpu::virtio_gpu_resource_create_2d>()
        );
        assert_eq!(
            size_of::<IdBody>(),
            body::<gpu::virtio_gpu_resource_unref>()
        );
        assert_eq!(size_of::<IdBody>(), body::<gpu::virtio_gpu_cmd_get_edid>());
        assert_eq!(
            size_of::<SetScanout>(),
            body::<gpu::virtio_gpu_set_scanout>()
        );
        assert_eq!(
            size_of::<ResourceFlush>(),
            body::<gpu::virtio_gpu_resource_flush>()
        );
        assert_eq!(
            size_of::<TransferToHost2d>(),
            body::<gpu::virtio_gpu_transfer_to_host_2d>()
        );
        assert_eq!(
            size_of::<AttachBacking>(),
            body::<gpu::virtio_gpu_resource_attach_backing>()
        );
        assert_eq!(
            size_of::<MemEntry>(),
            size_of::<gpu::virtio_gpu_mem_entry>()
        );
        assert_eq!(
            size_of::<CursorPos>(),
            size_of::<gpu::virtio_gpu_cursor_pos>()
        );
        assert_eq!(
            size_of::<UpdateCursor>(),
            body::<gpu::virtio_gpu_update_cursor>()
        );
        assert_eq!(
            size_of::<DisplayOne>(),
            size_of::<gpu::virtio_gpu_resp_display_info_virtio_gpu_display_one>()
        );
        assert_eq!(
            size_of::<[DisplayOne; WIRE_MAX_SCANOUTS as usize]>(),
            body::<gpu::virtio_gpu_resp_display_info>()
        );
        assert_eq!(
            size_of::<ConfigSpace>(),
            size_of::<gpu::virtio_gpu_config>()
        );
        assert_eq!(EDID_BLOB_SIZE, 1024);
    }

    #[test]
    fn formats_map_by_byte_order() {
        // Numbers from the virtio spec, not the bindings the code uses.
        assert_eq!(pixel_format(2), Some(PixelFormat::Xrgb8888));
        assert_eq!(pixel_format(1), Some(PixelFormat::Argb8888));
        assert_eq!(pixel_format(67), Some(PixelFormat::Abgr8888));
        assert_eq!(pixel_format(134), Some(PixelFormat::Xbgr8888));
        for alpha_first in [0, 3, 4, 68, 121, u32::MAX] {
            assert_eq!(pixel_format(alpha_first), None);
        }
    }
}
