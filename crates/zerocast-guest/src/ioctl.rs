//! The two DRM ioctls the `drm` crate offers no call for on a bare GEM
//! handle: virtio-gpu's RESOURCE_INFO (GEM handle to the virtio-gpu
//! resource id the host knows) and MAP_DUMB (the mmap offset of a dumb
//! buffer's pixels).

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use drm::buffer;

/// `DRM_IOWR(nr, size)` from `drm.h`: read-write direction, type `'d'`.
/// The assert (at compile time: only constants call this) keeps `size` in
/// `_IOC`'s 14-bit size field, so the cast to `u32` is exact.
#[allow(clippy::cast_possible_truncation)]
const fn drm_iowr(nr: u32, size: usize) -> libc::c_ulong {
    const IOC_READ_WRITE: u32 = 3;
    assert!(
        size < 1 << 14,
        "ioctl argument too large for _IOC's size field"
    );
    ((IOC_READ_WRITE << 30) | ((size as u32) << 16) | ((b'd' as u32) << 8) | nr) as libc::c_ulong
}

/// `struct drm_virtgpu_resource_info` from `virtgpu_drm.h`.
#[repr(C)]
#[derive(Default)]
struct ResourceInfo {
    bo_handle: u32,
    res_handle: u32,
    size: u32,
    blob_mem: u32,
}

/// `DRM_IOCTL_VIRTGPU_RESOURCE_INFO`: driver ioctl 0x05 (after `DRM_COMMAND_BASE` 0x40).
const VIRTGPU_RESOURCE_INFO: libc::c_ulong =
    drm_iowr(0x40 + 0x05, std::mem::size_of::<ResourceInfo>());

/// `struct drm_mode_map_dumb` from `drm_mode.h`.
#[repr(C)]
#[derive(Default)]
struct MapDumb {
    handle: u32,
    pad: u32,
    offset: u64,
}

/// `DRM_IOCTL_MODE_MAP_DUMB`.
const MODE_MAP_DUMB: libc::c_ulong = drm_iowr(0xB3, std::mem::size_of::<MapDumb>());

/// The virtio-gpu resource id behind a GEM handle. Fails with ENOTTY (or
/// EINVAL) on a card that is not virtio-gpu.
pub fn resource_id(card: &impl AsFd, handle: buffer::Handle) -> io::Result<u32> {
    let mut info = ResourceInfo {
        bo_handle: handle.into(),
        ..ResourceInfo::default()
    };
    // SAFETY: the fd is an open DRM node; the request number encodes the
    // size of `ResourceInfo`, which matches the kernel's struct field for
    // field, and `info` is a live, exclusively borrowed value of that type.
    let rc = unsafe {
        libc::ioctl(
            card.as_fd().as_raw_fd(),
            VIRTGPU_RESOURCE_INFO,
            &mut info as *mut ResourceInfo,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.res_handle)
}

/// The offset to mmap the card at to see a dumb buffer's pixels.
pub fn map_dumb_offset(card: &impl AsFd, handle: buffer::Handle) -> io::Result<u64> {
    let mut map = MapDumb {
        handle: handle.into(),
        ..MapDumb::default()
    };
    // SAFETY: as above: an open DRM node, a request number built from the
    // size of `MapDumb` (the kernel's `drm_mode_map_dumb`), and a live,
    // exclusively borrowed value of that type.
    let rc = unsafe {
        libc::ioctl(
            card.as_fd().as_raw_fd(),
            MODE_MAP_DUMB,
            &mut map as *mut MapDumb,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(map.offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_the_kernel_headers() {
        // Values of DRM_IOCTL_VIRTGPU_RESOURCE_INFO and
        // DRM_IOCTL_MODE_MAP_DUMB as the C headers expand them on x86_64.
        assert_eq!(VIRTGPU_RESOURCE_INFO, 0xC010_6445);
        assert_eq!(MODE_MAP_DUMB, 0xC010_64B3);
    }
}
