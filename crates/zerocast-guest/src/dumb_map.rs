//! A read-only view of a dumb buffer's pixels: MAP_DUMB gives an offset in
//! the card's mmap space, and mmap at that offset shows the buffer's pages.
//! The mapping holds its own reference to the buffer, so the GEM handle
//! used to make it can be closed at once.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;

use drm::buffer;

use crate::ioctl;

pub struct DumbMap {
    ptr: NonNull<u8>,
    len: usize,
}

impl DumbMap {
    /// Maps the first `len` bytes of the dumb buffer behind `handle`.
    pub fn new(card: &impl AsFd, handle: buffer::Handle, len: usize) -> io::Result<DumbMap> {
        let offset = ioctl::map_dumb_offset(card, handle)?;
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::other("MAP_DUMB offset out of range"))?;
        // SAFETY: a fresh shared, read-only mapping chosen by the kernel (no
        // fixed address, so nothing of ours is replaced), of an open DRM fd
        // at the offset the kernel just gave for this buffer.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                card.as_fd().as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(DumbMap { ptr, len })
    }

    pub fn pixels(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable bytes until
        // `self` drops. Another process (the display's owner) may write these
        // pages: a program that page-flips does not draw into the buffer on
        // screen, and a racing write only tears the captured picture, as with
        // any screen grabber; the bytes are plain u8 with no invalid values.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for DumbMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no slice from
        // `pixels` outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
