//! A resource's backing: the guest's scatter-gather list of guest-physical
//! chunks, checked against guest memory once, then read through with
//! vm-memory's checked accessors (the copy path).

use std::mem::size_of;

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::budget::{Budget, Charge, OverBudget};
use crate::commands::BackingEntry;

/// The most bytes one resource's backing may span: the largest resource
/// (8192x8192x4) plus slack for page rounding. Bounds the host address space
/// a guest can make us map by attaching the same pages many times.
pub const MAX_BACKING_BYTES: u64 = 8192 * 8192 * 4 + (1 << 20);

/// Why a backing list or a read through it was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackingError {
    #[error("backing has no entries")]
    Empty,
    #[error("backing entry {index} has length 0")]
    EmptyEntry { index: usize },
    #[error("backing entry {index} ({addr:#x} + {len}) is outside guest memory")]
    OutsideMemory { index: usize, addr: u64, len: u32 },
    #[error("backing spans {total} bytes, more than the limit of {MAX_BACKING_BYTES}")]
    TooLarge { total: u64 },
    #[error("bytes {offset}..+{len} are outside the {backing} bytes of backing")]
    OutOfRange {
        offset: u64,
        len: usize,
        backing: u64,
    },
    #[error("reading guest memory at {addr:#x} failed: {source}")]
    Read {
        addr: u64,
        source: vm_memory::GuestMemoryError,
    },
    #[error("backing table of {bytes} bytes would pass the host memory budget: {over}")]
    OutOfMemory { bytes: u64, over: OverBudget },
}

impl BackingError {
    /// True when the guest's parameters were wrong (as opposed to guest
    /// memory changing under an already accepted backing, or the host
    /// memory budget being spent).
    pub fn is_bad_parameter(&self) -> bool {
        !matches!(
            self,
            BackingError::Read { .. } | BackingError::OutOfMemory { .. }
        )
    }
}

/// Host bytes a table of `n` entries holds: the entry and its start offset.
const TABLE_BYTES_PER_ENTRY: u64 = (size_of::<BackingEntry>() + size_of::<u64>()) as u64;

/// A checked backing list: every entry non-empty and inside guest memory at
/// attach time, the total within [`MAX_BACKING_BYTES`], entries that touch
/// in guest memory merged, the table paid for from the host memory budget.
#[derive(Debug)]
pub struct Backing {
    entries: Vec<BackingEntry>,
    /// `starts[i]` is the backing offset where entry `i` begins.
    starts: Vec<u64>,
    len: u64,
    _table: Charge,
}

impl Backing {
    /// Checks `entries` against `mem` and pays for the table from `hostmem`.
    pub fn new(
        mem: &GuestMemoryMmap,
        mut entries: Vec<BackingEntry>,
        hostmem: &Budget,
    ) -> Result<Self, BackingError> {
        if entries.is_empty() {
            return Err(BackingError::Empty);
        }
        let mut total = 0u64;
        for (index, e) in entries.iter().enumerate() {
            if e.len == 0 {
                return Err(BackingError::EmptyEntry { index });
            }
            let inside = e.addr.0.checked_add(u64::from(e.len)).is_some()
                && mem.check_range(e.addr, e.len as usize);
            if !inside {
                return Err(BackingError::OutsideMemory {
                    index,
                    addr: e.addr.0,
                    len: e.len,
                });
            }
            total += u64::from(e.len);
            if total > MAX_BACKING_BYTES {
                return Err(BackingError::TooLarge { total });
            }
        }
        merge_touching(&mut entries);
        let bytes = entries.len() as u64 * TABLE_BYTES_PER_ENTRY;
        let table = hostmem
            .take(bytes)
            .map_err(|over| BackingError::OutOfMemory { bytes, over })?;
        entries.shrink_to_fit();
        let mut starts = Vec::with_capacity(entries.len());
        let mut at = 0u64;
        for e in &entries {
            starts.push(at);
            at += u64::from(e.len);
        }
        Ok(Backing {
            entries,
            starts,
            len: total,
            _table: table,
        })
    }

    /// The entries, in backing order.
    pub fn entries(&self) -> &[BackingEntry] {
        &self.entries
    }

    /// Total bytes of backing.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Copies `dst.len()` bytes starting at backing offset `offset` out of
    /// guest memory, walking the entries.
    pub fn read(
        &self,
        mem: &GuestMemoryMmap,
        offset: u64,
        dst: &mut [u8],
    ) -> Result<(), BackingError> {
        let len = dst.len();
        let out_of_range = || BackingError::OutOfRange {
            offset,
            len,
            backing: self.len,
        };
        let end = offset.checked_add(len as u64).ok_or_else(out_of_range)?;
        if end > self.len {
            return Err(out_of_range());
        }
        // The entry holding `offset`: the last one starting at or before it.
        let mut index = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let mut pos = offset;
        let mut done = 0usize;
        while done < dst.len() {
            let (Some(&entry), Some(&start)) = (self.entries.get(index), self.starts.get(index))
            else {
                return Err(out_of_range());
            };
            let within = pos - start;
            // What is left of the entry fits in usize on 64-bit hosts; if not,
            // what is left of `dst` is smaller anyway.
            let left_in_entry =
                usize::try_from(u64::from(entry.len) - within).unwrap_or(usize::MAX);
            let n = left_in_entry.min(dst.len() - done);
            let addr = GuestAddress(entry.addr.0 + within);
            mem.read_slice(&mut dst[done..done + n], addr)
                .map_err(|source| BackingError::Read {
                    addr: addr.0,
                    source,
                })?;
            done += n;
            pos += n as u64;
            index += 1;
        }
        Ok(())
    }
}

/// Merges each entry into the one before it where they touch in guest
/// memory (as long as the length fits an entry), in place: a guest's
/// page-by-page list of a contiguous buffer becomes one entry.
fn merge_touching(entries: &mut Vec<BackingEntry>) {
    entries.dedup_by(|next, prev| {
        let touches = prev.addr.0.checked_add(u64::from(prev.len)) == Some(next.addr.0);
        match prev.len.checked_add(next.len) {
            Some(len) if touches => {
                prev.len = len;
                true
            }
            _ => false,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::entry;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[
            (GuestAddress(0), 0x10000),
            (GuestAddress(0x20000), 0x10000),
        ])
        .unwrap()
    }

    #[test]
    fn refuses_entries_outside_memory_or_overflowing() {
        let mem = memory();
        let hostmem = Budget::new(1 << 20);
        let refuse =
            |entries: Vec<BackingEntry>| Backing::new(&mem, entries, &hostmem).unwrap_err();
        assert!(matches!(refuse(vec![]), BackingError::Empty));
        assert!(matches!(
            refuse(vec![entry(0, 0)]),
            BackingError::EmptyEntry { .. }
        ));
        // In the hole between the two regions.
        assert!(matches!(
            refuse(vec![entry(0x10000, 16)]),
            BackingError::OutsideMemory { .. }
        ));
        // Straddling the end of the first region into the hole.
        assert!(matches!(
            refuse(vec![entry(0xFFF0, 32)]),
            BackingError::OutsideMemory { .. }
        ));
        // Wrapping around the address space.
        assert!(matches!(
            refuse(vec![entry(u64::MAX - 8, 4096)]),
            BackingError::OutsideMemory { .. }
        ));
        // The same page attached over and over, past the size limit.
        let many =
            vec![entry(0, 0x10000); usize::try_from(MAX_BACKING_BYTES / 0x10000 + 1).unwrap()];
        assert!(matches!(refuse(many), BackingError::TooLarge { .. }));
    }

    #[test]
    fn reads_across_entries_in_backing_order() {
        let mem = memory();
        mem.write_slice(b"world", GuestAddress(0x20000)).unwrap();
        mem.write_slice(b"hello ", GuestAddress(0x100)).unwrap();
        let hostmem = Budget::new(1 << 20);
        let b = Backing::new(&mem, vec![entry(0x100, 6), entry(0x20000, 5)], &hostmem).unwrap();
        assert_eq!(b.len(), 11);
        let mut out = [0u8; 11];
        b.read(&mem, 0, &mut out).unwrap();
        assert_eq!(&out, b"hello world");
        let mut tail = [0u8; 4];
        b.read(&mem, 5, &mut tail).unwrap();
        assert_eq!(&tail, b" wor");
        assert!(matches!(
            b.read(&mem, 8, &mut [0u8; 4]),
            Err(BackingError::OutOfRange { .. })
        ));
        assert!(matches!(
            b.read(&mem, u64::MAX, &mut [0u8; 1]),
            Err(BackingError::OutOfRange { .. })
        ));
    }

    #[test]
    fn touching_entries_merge_and_the_table_is_paid_for() {
        let mem = memory();
        mem.write_slice(b"abcdef", GuestAddress(0x100)).unwrap();
        let hostmem = Budget::new(1 << 20);
        // Three touching runs, then one elsewhere, then one touching that.
        let entries = vec![
            entry(0x100, 2),
            entry(0x102, 2),
            entry(0x104, 2),
            entry(0x20000, 16),
            entry(0x20010, 16),
        ];
        let b = Backing::new(&mem, entries, &hostmem).unwrap();
        assert_eq!(b.entries(), &[entry(0x100, 6), entry(0x20000, 32)]);
        assert_eq!(b.len(), 38);
        assert_eq!(hostmem.used(), 2 * TABLE_BYTES_PER_ENTRY);
        let mut out = [0u8; 6];
        b.read(&mem, 0, &mut out).unwrap();
        assert_eq!(&out, b"abcdef");
        drop(b);
        assert_eq!(hostmem.used(), 0);
        // A table past the budget is refused, and is no bad parameter.
        let tight = Budget::new(TABLE_BYTES_PER_ENTRY);
        let apart = vec![entry(0x100, 2), entry(0x200, 2)];
        let refused = Backing::new(&mem, apart, &tight).unwrap_err();
        assert!(matches!(refused, BackingError::OutOfMemory { .. }));
        assert!(!refused.is_bad_parameter());
        assert_eq!(tight.used(), 0);
    }
}
