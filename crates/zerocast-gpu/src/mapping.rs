//! Zero-copy: a resource's scattered backing mapped as ONE contiguous,
//! read-only range of host address space, straight from the file that
//! backs guest RAM (QEMU's `memory-backend-memfd,share=on`).
//!
//! We reserve address space with `mmap(PROT_NONE)`, then map each backing
//! chunk over its place with `mmap(MAP_SHARED | MAP_FIXED, PROT_READ)` of the
//! guest-RAM file at the chunk's offset. The pages are the guest's own: no
//! byte is copied, and a guest write shows up in the view at once.
//!
//! Each chunk is one VMA of the process, so chunks are merged where they
//! touch in the file, capped per view and counted against a
//! [`MappingBudget`]: a view that would pass either is not made, and the
//! resource is copied instead.

use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::budget::{Charge, MappingBudget, OverBudget};
use crate::commands::BackingEntry;

/// Why a backing cannot be mapped without copying (the resource then falls
/// back to the copy path).
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("backing is empty")]
    Empty,
    #[error("guest address {addr:#x} is outside guest memory")]
    OutsideMemory { addr: u64 },
    #[error("guest memory at {addr:#x} is not backed by a file (needs a shared memfd backend)")]
    NoFile { addr: u64 },
    #[error("backing chunk at file offset {file_offset:#x} (+{len}) is not page-aligned")]
    Unaligned { file_offset: u64, len: u64 },
    #[error("backing needs {chunks} mappings, more than the limit of {limit} per resource")]
    TooManyChunks { chunks: usize, limit: usize },
    #[error("the process's mapping budget is spent: {0}")]
    BudgetSpent(OverBudget),
    #[error("mmap failed: {0}")]
    Mmap(io::Error),
}

impl MapError {
    /// True when the backing could be mapped, but a budget says no.
    pub fn is_budget(&self) -> bool {
        matches!(
            self,
            MapError::TooManyChunks { .. } | MapError::BudgetSpent(_)
        )
    }
}

/// What a view may take: mappings per resource, and the shared budget.
#[derive(Debug, Clone)]
pub struct MappingLimits {
    pub per_resource: usize,
    pub budget: MappingBudget,
}

/// A run of backing that is contiguous in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunk {
    fd: i32,
    file_offset: u64,
    len: u64,
    /// Bytes of the same guest-memory region after the chunk's end: how far
    /// the last chunk may be rounded up to a page without leaving the region.
    room_after: u64,
}

/// The host page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the running system; no memory is touched.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Splits entries at guest-memory region boundaries, finds each piece's file
/// and offset, and merges pieces that continue each other in the same file.
fn plan(mem: &GuestMemoryMmap, entries: &[BackingEntry]) -> Result<Vec<Chunk>, MapError> {
    let mut chunks: Vec<Chunk> = Vec::new();
    for e in entries {
        let mut addr = e.addr;
        let mut left = u64::from(e.len);
        while left > 0 {
            let outside = MapError::OutsideMemory { addr: addr.0 };
            let region = mem.find_region(addr).ok_or(outside)?;
            let within = addr.0 - region.start_addr().0;
            let n = left.min(region.len() - within);
            let file = region
                .file_offset()
                .ok_or(MapError::NoFile { addr: addr.0 })?;
            let file_offset = file
                .start()
                .checked_add(within)
                .ok_or(MapError::OutsideMemory { addr: addr.0 })?;
            let piece = Chunk {
                fd: file.file().as_raw_fd(),
                file_offset,
                len: n,
                room_after: region.len() - within - n,
            };
            match chunks.last_mut() {
                Some(last) if last.fd == piece.fd && last.file_offset + last.len == file_offset => {
                    last.len += n;
                    last.room_after = piece.room_after;
                }
                _ => chunks.push(piece),
            }
            addr = vm_memory::GuestAddress(addr.0 + n);
            left -= n;
        }
    }
    // Every chunk must start on a page in the file and (so that the next one
    // starts on a page in the view) all but the last must be whole pages.
    let page = page_size();
    let last = chunks.len().saturating_sub(1);
    for (i, c) in chunks.iter().enumerate() {
        let rounded = c.len.next_multiple_of(page);
        let whole = if i == last {
            rounded - c.len <= c.room_after
        } else {
            c.len % page == 0
        };
        if c.file_offset % page != 0 || !whole {
            return Err(MapError::Unaligned {
                file_offset: c.file_offset,
                len: c.len,
            });
        }
    }
    Ok(chunks)
}

/// A read-only, contiguous view of a resource's backing in guest RAM.
/// Unmapped on drop; share it with `Arc` to keep it alive while read.
#[derive(Debug)]
pub struct GuestMapping {
    base: NonNull<u8>,
    /// Bytes of address space reserved (a whole number of pages).
    reserved: usize,
    /// Bytes of backing the view shows.
    len: usize,
    /// Number of `mmap` calls the view took (after merging contiguous chunks).
    chunks: usize,
    /// Its share of the mapping budget, given back after the unmap.
    _charge: Charge,
}

// SAFETY: the mapping is read-only and owned by this value; sharing the
// pointer between threads only allows concurrent reads.
unsafe impl Send for GuestMapping {}
// SAFETY: as above: `&GuestMapping` only hands out `&[u8]`.
unsafe impl Sync for GuestMapping {}

impl GuestMapping {
    /// Maps `entries` (already checked to lie in `mem`) back to back, if
    /// that stays within `limits`.
    pub fn new(
        mem: &GuestMemoryMmap,
        entries: &[BackingEntry],
        limits: &MappingLimits,
    ) -> Result<Self, MapError> {
        let chunks = plan(mem, entries)?;
        let len: u64 = chunks.iter().map(|c| c.len).sum();
        if len == 0 {
            return Err(MapError::Empty);
        }
        if chunks.len() > limits.per_resource {
            return Err(MapError::TooManyChunks {
                chunks: chunks.len(),
                limit: limits.per_resource,
            });
        }
        // Once the chunks cover the reservation, each is one VMA.
        let charge = limits
            .budget
            .0
            .take(chunks.len() as u64)
            .map_err(MapError::BudgetSpent)?;
        let too_big = || MapError::Mmap(io::Error::from(io::ErrorKind::OutOfMemory));
        let len = usize::try_from(len).map_err(|_| too_big())?;
        let reserved =
            usize::try_from((len as u64).next_multiple_of(page_size())).map_err(|_| too_big())?;
        // SAFETY: a fresh anonymous PROT_NONE reservation at an address the
        // kernel picks; it aliases nothing and is not accessible until the
        // chunks are mapped over it below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(MapError::Mmap(io::Error::last_os_error()));
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(too_big)?;
        // From here on, dropping `mapping` unmaps the whole reservation.
        let mapping = GuestMapping {
            base,
            reserved,
            len,
            chunks: chunks.len(),
            _charge: charge,
        };
        let page = page_size();
        let mut at = 0usize;
        for c in &chunks {
            // Both fit: the chunks lie within `reserved`, a usize.
            let map_len = usize::try_from(c.len.next_multiple_of(page)).map_err(|_| too_big())?;
            let chunk_len = usize::try_from(c.len).map_err(|_| too_big())?;
            let offset = libc::off_t::try_from(c.file_offset).map_err(|_| too_big())?;
            // SAFETY: `plan` made every chunk but the last a whole number of
            // pages, so `at` is page-aligned and `at + map_len <= reserved`:
            // MAP_FIXED replaces only pages of our own reservation, never
            // another mapping. `c.fd` is the guest-RAM file, kept open by
            // `mem` for the duration of this call; the new mapping holds its
            // own reference to the file afterwards. `offset` is page-aligned
            // (checked in `plan`) and `offset + map_len` stays inside the
            // region the file backs (`room_after` for the last chunk).
            let p = unsafe {
                libc::mmap(
                    mapping.base.as_ptr().add(at).cast(),
                    map_len,
                    libc::PROT_READ,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    c.fd,
                    offset,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(MapError::Mmap(io::Error::last_os_error()));
            }
            at += chunk_len;
        }
        Ok(mapping)
    }

    /// The backing's bytes, in resource order.
    ///
    /// The guest may write these pages at any moment (they are its
    /// framebuffer): a reader sees plain bytes, possibly of a frame in the
    /// middle of being drawn, never memory outside the guest's RAM.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `base..base + len` lies inside the reservation, and every
        // page of it is mapped PROT_READ from guest RAM (`new` fails
        // otherwise) until `drop`, which `&self` outlives. Any byte value is a
        // valid `u8`. The pages are shared with the guest, whose writes come
        // from outside this process's Rust code (a vCPU in QEMU); the file is
        // QEMU's guest-RAM memfd, which is never shrunk while mapped, so reads
        // cannot fault.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }

    /// How many `mmap` calls built the view (contiguous chunks are merged).
    pub fn chunks(&self) -> usize {
        self.chunks
    }
}

impl Drop for GuestMapping {
    fn drop(&mut self) {
        // SAFETY: `base..base + reserved` is exactly the reservation made in
        // `new`, owned by this value; no `&[u8]` from `bytes` outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.reserved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{entry, memfd_memory, HIGH_REGION};
    use vm_memory::{Bytes, GuestAddress};

    /// Generous limits, a budget of the test's own.
    fn limits() -> MappingLimits {
        MappingLimits {
            per_resource: 64,
            budget: MappingBudget::new(1000),
        }
    }

    /// The test pattern of byte `byte` of page `page`: only the low bytes
    /// matter, so they wrap on purpose.
    fn pattern(page: usize, byte: usize) -> u8 {
        page.to_le_bytes()[0].wrapping_mul(31) ^ byte.to_le_bytes()[0]
    }

    #[test]
    fn shuffled_pages_read_in_resource_order() {
        let page = page_size();
        let page_len = usize::try_from(page).unwrap();
        let mem = memfd_memory(64 * page);
        let high = HIGH_REGION;
        // Twelve scattered guest pages, across both regions, in a shuffled order.
        let pages: Vec<u64> = [
            7,
            3,
            30,
            1,
            high + 5 * page,
            12,
            high,
            25,
            9,
            high + 2 * page,
            0,
            20,
        ]
        .iter()
        .map(|&p| if p >= high { p } else { p * page })
        .collect();
        for (i, &addr) in pages.iter().enumerate() {
            let fill: Vec<u8> = (0..page_len).map(|b| pattern(i, b)).collect();
            mem.write_slice(&fill, GuestAddress(addr)).unwrap();
        }
        let page32 = u32::try_from(page).unwrap();
        let entries: Vec<_> = pages.iter().map(|&a| entry(a, page32)).collect();
        let view = GuestMapping::new(&mem, &entries, &limits()).unwrap();
        let bytes = view.bytes();
        assert_eq!(bytes.len() as u64, 12 * page);
        for (i, chunk) in bytes.chunks(page_len).enumerate() {
            assert!(
                chunk.iter().enumerate().all(|(b, &v)| v == pattern(i, b)),
                "page {i}"
            );
        }
        // Zero-copy: a guest write after mapping shows up in the view.
        mem.write_slice(b"live", GuestAddress(pages[4] + 8))
            .unwrap();
        assert_eq!(&view.bytes()[4 * page_len + 8..][..4], b"live");
    }

    #[test]
    fn contiguous_entries_merge_and_a_short_last_entry_maps() {
        let page = page_size();
        let page32 = u32::try_from(page).unwrap();
        let mem = memfd_memory(16 * page);
        let entries = [entry(0, page32), entry(page, page32), entry(2 * page, 100)];
        let view = GuestMapping::new(&mem, &entries, &limits()).unwrap();
        assert_eq!(view.chunks(), 1);
        assert_eq!(view.bytes().len() as u64, 2 * page + 100);
    }

    #[test]
    fn unaligned_or_fileless_backing_is_refused() {
        let page = page_size();
        let page32 = u32::try_from(page).unwrap();
        let mem = memfd_memory(16 * page);
        let unaligned = GuestMapping::new(&mem, &[entry(8, page32)], &limits());
        assert!(matches!(unaligned, Err(MapError::Unaligned { .. })));
        let short_middle =
            GuestMapping::new(&mem, &[entry(0, 100), entry(4 * page, 100)], &limits());
        assert!(matches!(short_middle, Err(MapError::Unaligned { .. })));
        let anon_len = usize::try_from(16 * page).unwrap();
        let anon = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), anon_len)]).unwrap();
        let no_file = GuestMapping::new(&anon, &[entry(0, page32)], &limits());
        assert!(matches!(no_file, Err(MapError::NoFile { .. })));
    }

    #[test]
    fn views_stay_within_the_per_resource_cap_and_the_shared_budget() {
        let page = page_size();
        let page32 = u32::try_from(page).unwrap();
        let mem = memfd_memory(64 * page);
        // Every other page: nothing merges, one mapping per page.
        let scattered: Vec<_> = (0..8).map(|i| entry(2 * i * page, page32)).collect();
        let limits = MappingLimits {
            per_resource: 8,
            budget: MappingBudget::new(12),
        };
        let first = GuestMapping::new(&mem, &scattered, &limits).unwrap();
        assert_eq!(first.chunks(), 8);
        assert_eq!(limits.budget.in_use(), 8);
        let nine: Vec<_> = (0..9).map(|i| entry(2 * i * page, page32)).collect();
        assert!(matches!(
            GuestMapping::new(&mem, &nine, &limits),
            Err(MapError::TooManyChunks {
                chunks: 9,
                limit: 8
            })
        ));
        // 8 + 8 would pass 12; nothing was mapped or taken.
        let second = GuestMapping::new(&mem, &scattered, &limits);
        assert!(matches!(second, Err(MapError::BudgetSpent(_))));
        assert!(second.unwrap_err().is_budget());
        assert_eq!(limits.budget.in_use(), 8);
        // Touching pages are one mapping whatever their number.
        let run: Vec<_> = (0..32).map(|i| entry(i * page, page32)).collect();
        let merged = GuestMapping::new(&mem, &run, &limits).unwrap();
        assert_eq!((merged.chunks(), limits.budget.in_use()), (1, 9));
        drop((first, merged));
        assert_eq!(limits.budget.in_use(), 0);
    }
}
