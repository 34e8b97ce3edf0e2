//! Test support: guest memory backed by a memfd, as QEMU's
//! `memory-backend-memfd,share=on` gives it to a vhost-user backend.

use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::sync::Arc;

use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap};

use crate::commands::{BackingEntry, Rect};

/// virtio-gpu's B8G8R8X8 format number.
pub const XRGB: u32 = 2;

/// One scatter-gather entry of a backing.
pub fn entry(addr: u64, len: u32) -> BackingEntry {
    BackingEntry {
        addr: GuestAddress(addr),
        len,
    }
}

pub fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
    Rect {
        x,
        y,
        width,
        height,
    }
}

/// Where the second region starts (a hole below it, like x86's PCI hole).
pub const HIGH_REGION: u64 = 0x1_0000_0000;

/// `size` bytes of guest memory in one memfd, split into two regions: guest
/// `0..size/2` at file offset 0, and `HIGH_REGION..` at file offset `size/2`.
pub fn memfd_memory(size: u64) -> GuestMemoryMmap {
    // SAFETY: memfd_create with a valid C string; the result is checked below.
    let fd = unsafe { libc::memfd_create(c"zerocast-gpu-test".as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let file = Arc::new(unsafe { File::from_raw_fd(fd) });
    file.set_len(size).unwrap();
    let half = size / 2;
    GuestMemoryMmap::from_ranges_with_files([
        (
            GuestAddress(0),
            half as usize,
            Some(FileOffset::from_arc(file.clone(), 0)),
        ),
        (
            GuestAddress(HIGH_REGION),
            half as usize,
            Some(FileOffset::from_arc(file, half)),
        ),
    ])
    .unwrap()
}
