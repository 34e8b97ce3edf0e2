//! The fuzz target's script interpreter and checks (feature `fuzzing`, not
//! API), shared by `fuzz/` and the corpus replay test.
//!
//! The fuzzer's bytes are a script of what a guest and the host may do to a
//! device with two scanouts and 4 MiB of memfd guest RAM: commands (hostile
//! backing lists, rectangles and offsets included), raw garbage on either
//! queue, the guest drawing, device resets, the host switching a scanout
//! off. The guest draws every page it attaches with a byte unique to the
//! resource, and once it takes pages back, fills those no other backing
//! holds with [`SECRET`]. While the script runs, a second thread polls
//! scanout sources and the resource table and reads every byte of every
//! frame, as the encoder does; between commands the main thread does the
//! same and checks each frame byte for byte against a model of the device
//! built from its answers.

use std::collections::BTreeMap;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};
use zerocast_frame::{Frame, FrameSource};

use crate::budget::MappingBudget;
use crate::commands::{self, build, BackingEntry, Command, Rect};
use crate::config::GpuConfig;
use crate::device::Shared;
use crate::protocol::{self, CtrlHdr};
use crate::snapshot::ResourceSnapshot;
use crate::source::ScanoutSource;
use crate::table::ResourceTable;
use crate::testutil::{entry, memfd_memory, rect, HIGH_REGION, XRGB};

const PAGE_BYTES: u32 = 4096;
const PAGE: usize = PAGE_BYTES as usize;
/// Guest RAM in pages: half below [`HIGH_REGION`], half from it on.
const PAGES: usize = 1024;
const HALF: u64 = (PAGE * PAGES / 2) as u64;
/// Scanout modes: small, so "no signal" pictures are cheap to check.
const SCANOUTS: [(u32, u32); 2] = [(64, 48), (32, 32)];
/// Resource ids the script uses (0 is picked too, to be refused).
const IDS: [u32; 8] = [1, 2, 3, 4, 5, 6, 7, u32::MAX];
/// Most steps one input runs, so a long input stays quick.
const MAX_STEPS: usize = 256;
/// Budgets small enough for a script to run into: host memory (two of the
/// largest resources the script makes), mappings per resource and in all.
const MAX_HOSTMEM: u64 = 16 << 20;
const MAX_MAPPINGS_PER_RESOURCE: usize = 256;
const MAX_MAPPINGS: u64 = 2048;
/// VMAs the process may gain beyond the mapping budget during a run: the
/// reader thread's stack and allocator arenas.
const OTHER_MAPPINGS: usize = 256;

/// What the guest leaves in pages it took back: no frame may show it.
pub const SECRET: u8 = 0xEE;
/// The "no signal" picture's bytes.
const GREY: u8 = 0x20;
/// The byte the guest draws resource `id` with: `0x41..` for [`IDS`],
/// `0x40` for ids only garbage commands name.
fn pattern(id: u32) -> u8 {
    IDS.iter()
        .position(|&i| i == id)
        .and_then(|i| u8::try_from(i + 1).ok())
        .map_or(0x40, |i| 0x40 + i)
}

/// A set of pattern bytes (`0x40..=0x48`) as bits.
fn pattern_bit(byte: u8) -> u16 {
    1 << (byte - 0x40)
}

/// Runs the script in `data`; panics on any broken invariant.
pub fn run(data: &[u8]) {
    let config = GpuConfig {
        scanouts: SCANOUTS.to_vec(),
        max_hostmem: MAX_HOSTMEM,
        max_mappings_per_resource: MAX_MAPPINGS_PER_RESOURCE,
        // A budget of the run's own: runs leave nothing in it.
        mappings: MappingBudget::new(MAX_MAPPINGS),
    };
    let mappings_before = process_mappings();
    let shared = Arc::new(Shared::new(&config));
    let epoch = Arc::new(AtomicU64::new(0));
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let reader = {
        let (shared, epoch, stop) = (shared.clone(), epoch.clone(), stop.0.clone());
        thread::spawn(move || read_until_stopped(&shared, &epoch, &stop))
    };
    let mut harness = Harness::new(shared, epoch);
    let mut script = Script(data);
    for _ in 0..MAX_STEPS {
        if script.0.is_empty() {
            break;
        }
        harness.step(&mut script);
    }
    harness.check_frames();
    let mappings = process_mappings();
    assert!(
        mappings <= mappings_before + usize::try_from(MAX_MAPPINGS).unwrap() + OTHER_MAPPINGS,
        "{mappings} mappings in the process, {mappings_before} before the run"
    );
    // Checks the frames once more, with nothing left alive.
    harness.reset();
    drop(stop);
    if let Err(panic) = reader.join() {
        std::panic::resume_unwind(panic);
    }
    drop(harness.sources);
    let stats = harness.shared.stats.snapshot();
    assert_eq!(
        (stats.mappings_in_use, stats.host_bytes_in_use),
        (0, 0),
        "budget charges left after everything was dropped"
    );
}

/// Tells the reader thread to finish, also when the main thread panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The fuzzer's bytes, read front to back; zeros once they run out.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let head = self.bytes(N);
        out[..head.len()].copy_from_slice(head);
        out
    }

    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A resource id: one of [`IDS`] or 0.
    fn id(&mut self) -> u32 {
        IDS.get(usize::from(self.u8() % 9)).copied().unwrap_or(0)
    }

    fn scanout(&mut self) -> u32 {
        [0, 1, 2, u32::MAX][usize::from(self.u8() % 4)]
    }
}

/// Guest pages, as bits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PageSet([u64; PAGES / 64]);

impl PageSet {
    fn insert(&mut self, page: usize) {
        self.0[page / 64] |= 1 << (page % 64);
    }

    fn intersects(&self, other: &PageSet) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }

    fn union(&mut self, other: &PageSet) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a |= b);
    }

    fn minus(&mut self, other: &PageSet) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a &= !b);
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..PAGES).filter(|p| self.0[p / 64] & (1 << (p % 64)) != 0)
    }

    /// Every page an entry touches, in either region of guest RAM.
    fn of(entries: &[BackingEntry]) -> PageSet {
        let mut set = PageSet::default();
        for e in entries {
            let (start, end) = (e.addr.0, e.addr.0.saturating_add(u64::from(e.len)));
            for (base, first) in [(0, 0), (HIGH_REGION, PAGES / 2)] {
                let (lo, hi) = (start.max(base), end.min(base + HALF));
                if lo < hi {
                    let page =
                        |addr: u64| usize::try_from((addr - base) / u64::from(PAGE_BYTES)).unwrap();
                    (page(lo)..=page(hi - 1)).for_each(|p| set.insert(first + p));
                }
            }
        }
        set
    }
}

/// Guest address of page `page`.
fn page_addr(page: usize) -> GuestAddress {
    let page = page as u64;
    let half = (PAGES / 2) as u64;
    GuestAddress(if page < half {
        page * u64::from(PAGE_BYTES)
    } else {
        HIGH_REGION + (page - half) * u64::from(PAGE_BYTES)
    })
}

/// A resource as the device's answers say it is.
#[derive(Debug)]
struct Modelled {
    width: u32,
    height: u32,
    backing: Option<Backed>,
}

#[derive(Debug)]
struct Backed {
    pages: PageSet,
    /// Patterns drawn on its pages since it was attached: all a frame of it
    /// may show (and zeros, before a transfer fills a copy).
    seen: u16,
}

struct Harness {
    shared: Arc<Shared>,
    mem: GuestMemoryMmap,
    /// Bumped after every take-back, before the guest reuses the pages.
    epoch: Arc<AtomicU64>,
    model: BTreeMap<u32, Modelled>,
    sources: Vec<ScanoutSource>,
    table: ResourceTable,
    /// Snapshots from the table at the last check, read again at the next.
    held: Vec<ResourceSnapshot>,
}

impl Harness {
    fn new(shared: Arc<Shared>, epoch: Arc<AtomicU64>) -> Self {
        let sources = (0..SCANOUTS.len())
            .map(|i| ScanoutSource::new(shared.clone(), u32::try_from(i).unwrap()))
            .collect();
        Harness {
            table: ResourceTable::new(shared.clone()),
            shared,
            mem: memfd_memory((PAGE * PAGES) as u64),
            epoch,
            model: Default::default(),
            sources,
            held: Vec::new(),
        }
    }

    fn step(&mut self, s: &mut Script) {
        match s.u8() % 14 {
            0 => {
                let id = s.id();
                let format = [1, XRGB, 67, 134, 3, s.u32()][usize::from(s.u8() % 6)];
                let width = match s.u8() % 4 {
                    0 => 1 + u32::from(s.u8()),
                    1 => 1 + u32::from(s.u8() % 64),
                    2 => [0, 8192, 8193, u32::MAX][usize::from(s.u8() % 4)],
                    // Always too wide: refused.
                    _ => s.u32() | 1 << 31,
                };
                // Never above 256 rows, so that no resource is over 8 MiB.
                let height = match s.u8() % 3 {
                    0 => 1 + u32::from(s.u8()),
                    1 => 1 + u32::from(s.u8() % 64),
                    _ => [0, 8193, u32::MAX, 1][usize::from(s.u8() % 4)],
                };
                self.control(build::create_2d(id, format, width, height));
            }
            1 => {
                let id = s.id();
                let entries = backing_list(s);
                let pairs: Vec<(u64, u32)> = entries.iter().map(|e| (e.addr.0, e.len)).collect();
                self.control(build::attach(id, &pairs));
            }
            2 => self.control(build::detach(s.id())),
            3 => self.control(build::unref(s.id())),
            4 => {
                let id = s.id();
                let r = self.rect(id, s);
                let stride = self.model.get(&id).map_or(0, |m| u64::from(m.width) * 4);
                let packed = u64::from(r.y) * stride + u64::from(r.x) * 4;
                let offset = match s.u8() % 3 {
                    0 => packed,
                    1 => packed + u64::from(s.u8()),
                    _ => s.u64(),
                };
                self.control(build::transfer(id, r, offset));
            }
            5 => {
                let id = s.id();
                let r = self.rect(id, s);
                self.control(build::flush(id, r));
            }
            6 => {
                let (scanout, id) = (s.scanout(), s.id());
                let r = self.rect(id, s);
                self.control(build::set_scanout(scanout, id, r));
            }
            7 => self.reset(),
            8 => {
                let update = s.u8() % 2 == 0;
                let (scanout, id, x, y) = (s.scanout(), s.id(), s.u32(), s.u32());
                let request = if update {
                    // Hotspots inside and outside the 64x64 image.
                    let hot = (u32::from(s.u8() % 80), u32::from(s.u8() % 80));
                    build::update_cursor(scanout, (x, y), id, hot)
                } else {
                    build::cursor(protocol::CMD_MOVE_CURSOR, scanout, x, y, id)
                };
                if s.u8() % 4 == 0 {
                    // On the wrong queue: refused.
                    self.control(request);
                } else {
                    self.shared.cursor(&request);
                }
            }
            9 => {
                let len = usize::from(s.u8());
                let mut request = match s.u8() % 3 {
                    // A known command type with a body of anything.
                    0 => CtrlHdr::of_type(0x100 + u32::from(s.u8() % 12))
                        .as_slice()
                        .to_vec(),
                    1 => CtrlHdr::of_type(0x300 + u32::from(s.u8() % 2))
                        .as_slice()
                        .to_vec(),
                    _ => Vec::new(),
                };
                request.extend_from_slice(s.bytes(len));
                if s.u8() % 2 == 0 {
                    self.control(request);
                } else {
                    self.shared.cursor(&request);
                }
            }
            10 => {
                // The guest draws again (pages other backings share included).
                let id = s.id();
                if let Some(pages) = self.backed(id).map(|b| b.pages.clone()) {
                    self.draw(pattern(id), &pages);
                }
            }
            11 => self.check_frames(),
            12 => {
                let index = usize::from(s.u8() % 2);
                let enabled = s.u8() % 2 == 0;
                self.shared.lock().scanouts[index].set_enabled(enabled);
                self.shared.notify();
            }
            _ => {
                let request = match s.u8() % 2 {
                    0 => build::get_display_info(),
                    _ => build::get_edid(s.scanout()),
                };
                self.control(request);
            }
        }
    }

    /// A rectangle for resource `id`: mostly inside it, sometimes anything.
    fn rect(&self, id: u32, s: &mut Script) -> Rect {
        let (w, h) = self
            .model
            .get(&id)
            .map_or((16, 16), |m| (m.width, m.height));
        match s.u8() % 4 {
            0 => rect(0, 0, w, h),
            1 => {
                let (x, y) = (u32::from(s.u16()) % w, u32::from(s.u16()) % h);
                let width = 1 + u32::from(s.u16()) % (w - x);
                let height = 1 + u32::from(s.u16()) % (h - y);
                rect(x, y, width, height)
            }
            2 => {
                let [x, y, width, height] = s.array::<4>().map(u32::from);
                rect(x, y, width, height)
            }
            _ => rect(s.u32(), s.u32(), s.u32(), s.u32()),
        }
    }

    fn backed(&self, id: u32) -> Option<&Backed> {
        self.model.get(&id)?.backing.as_ref()
    }

    /// Sends one control request and follows the device's answer in the
    /// model: only what it accepts changes the model, and what it accepts
    /// must make sense.
    fn control(&mut self, request: Vec<u8>) {
        let command = commands::decode(&request).ok();
        if let Some(Command::AttachBacking {
            resource_id,
            entries,
        }) = &command
        {
            // The guest fills pages before it hands them over.
            self.draw(pattern(*resource_id), &PageSet::of(entries));
        }
        let response = self.shared.control(&request, &self.mem);
        let accepted = commands::decode_header(&response).map(|h| u32::from(h.type_))
            == Ok(protocol::RESP_OK_NODATA);
        let (Some(command), true) = (command, accepted) else {
            return;
        };
        match command {
            Command::ResourceCreate2d {
                resource_id,
                width,
                height,
                ..
            } => {
                let new = Modelled {
                    width,
                    height,
                    backing: None,
                };
                let old = self.model.insert(resource_id, new);
                assert!(old.is_none(), "resource {resource_id} created twice");
            }
            Command::AttachBacking {
                resource_id,
                entries,
            } => {
                let pages = PageSet::of(&entries);
                let r = self.model.get_mut(&resource_id);
                let r = r.unwrap_or_else(|| panic!("backing attached to unknown {resource_id}"));
                assert!(r.backing.is_none(), "{resource_id} backed twice");
                r.backing = Some(Backed {
                    pages,
                    seen: pattern_bit(pattern(resource_id)),
                });
            }
            Command::DetachBacking { resource_id } => {
                let r = self.model.get_mut(&resource_id);
                let backing = r.and_then(|r| r.backing.take());
                let backing = backing.unwrap_or_else(|| panic!("{resource_id} detached unbacked"));
                self.took_back(&backing.pages);
            }
            Command::ResourceUnref { resource_id } => {
                let r = self.model.remove(&resource_id);
                let r = r.unwrap_or_else(|| panic!("unknown {resource_id} unrefd"));
                if let Some(backing) = r.backing {
                    self.took_back(&backing.pages);
                }
            }
            Command::SetScanout {
                resource_id, rect, ..
            } if resource_id != 0 => {
                let r = self.model.get(&resource_id);
                let shown =
                    r.is_some_and(|r| r.backing.is_some() && rect.is_inside(r.width, r.height));
                assert!(shown, "{resource_id} shown unbacked or outside it");
            }
            _ => {}
        }
    }

    /// Device reset (a new driver session): every resource goes.
    fn reset(&mut self) {
        self.shared.reset();
        let mut pages = PageSet::default();
        for r in std::mem::take(&mut self.model).into_values() {
            if let Some(b) = r.backing {
                pages.union(&b.pages);
            }
        }
        self.took_back(&pages);
    }

    /// The guest draws `byte` over `pages`: every backing on them may show it.
    fn draw(&mut self, byte: u8, pages: &PageSet) {
        let fill = [byte; PAGE];
        for page in pages.iter() {
            self.mem.write_slice(&fill, page_addr(page)).unwrap();
        }
        for b in self.model.values_mut().filter_map(|r| r.backing.as_mut()) {
            if b.pages.intersects(pages) {
                b.seen |= pattern_bit(byte);
            }
        }
    }

    /// The guest has taken `pages` back from the device and puts secrets in
    /// the ones no backing still holds.
    fn took_back(&mut self, pages: &PageSet) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut free = pages.clone();
        for b in self.model.values().filter_map(|r| r.backing.as_ref()) {
            free.minus(&b.pages);
        }
        let secret = [SECRET; PAGE];
        for page in free.iter() {
            self.mem.write_slice(&secret, page_addr(page)).unwrap();
        }
        self.check_frames();
    }

    /// Reads every frame the scanouts and the table hand out and checks each
    /// byte: a guest picture only of a resource that is alive and backed,
    /// with its own patterns; "no signal" all grey.
    fn check_frames(&mut self) {
        // First the pictures held since the last check, as an encoder holds
        // them between polls: pages taken back since must not show.
        for (index, source) in self.sources.iter().enumerate() {
            check_source_frame(&self.model, index, source);
        }
        for snapshot in std::mem::take(&mut self.held) {
            if let Some(frame) = snapshot.frame() {
                let (id, copied) = (snapshot.resource_id(), !snapshot.is_zero_copy());
                check_guest_frame(&self.model, id, copied, &frame);
            }
        }
        for (index, source) in self.sources.iter_mut().enumerate() {
            source.poll(Instant::now());
            check_source_frame(&self.model, index, source);
        }
        self.check_budgets();
        let ids: Vec<u32> = self.model.keys().copied().collect();
        assert_eq!(self.table.ids(), ids, "the table and the device's answers");
        // A backing too short for its resource gives no snapshot.
        for (id, snapshot) in ids
            .into_iter()
            .filter_map(|id| Some((id, self.table.get(id)?)))
        {
            if let Some(frame) = snapshot.frame() {
                check_guest_frame(&self.model, id, !snapshot.is_zero_copy(), &frame);
            }
            self.held.push(snapshot);
        }
    }

    /// What the guest cannot make the host spend beyond its budgets.
    fn check_budgets(&self) {
        let stats = self.shared.stats.snapshot();
        assert!(stats.mappings_in_use <= MAX_MAPPINGS, "{stats:?}");
        assert!(stats.host_bytes_in_use <= MAX_HOSTMEM, "{stats:?}");
    }
}

/// Mappings (VMAs) the process holds now.
fn process_mappings() -> usize {
    let maps = std::fs::read("/proc/self/maps").expect("/proc/self/maps");
    maps.iter().filter(|&&b| b == b'\n').count()
}

/// What a source shows: a guest picture, or "no signal" all grey.
fn check_source_frame(model: &BTreeMap<u32, Modelled>, index: usize, source: &ScanoutSource) {
    let Some(frame) = source.frame() else {
        return;
    };
    match source.snapshot() {
        Some(snapshot) => {
            let (id, copied) = (snapshot.resource_id(), !snapshot.is_zero_copy());
            check_guest_frame(model, id, copied, &frame);
        }
        None => {
            assert_eq!((frame.width(), frame.height()), SCANOUTS[index]);
            let bytes = byte_set(&frame);
            let grey = |(b, &seen): (usize, &bool)| !seen || b == usize::from(GREY);
            assert!(bytes.iter().enumerate().all(grey), "no signal is not grey");
        }
    }
}

/// A guest picture of resource `id` may only show bytes drawn on its pages
/// since it was attached, and zeros if it is a copy.
fn check_guest_frame(model: &BTreeMap<u32, Modelled>, id: u32, copied: bool, frame: &Frame) {
    let backed = model.get(&id).and_then(|r| r.backing.as_ref());
    let backed = backed.unwrap_or_else(|| panic!("frame of {id} after it was taken back"));
    for (byte, _) in byte_set(frame).iter().enumerate().filter(|(_, &s)| s) {
        let byte = u8::try_from(byte).unwrap();
        let ok = match byte {
            0 => copied,
            0x40..=0x48 => backed.seen & pattern_bit(byte) != 0,
            _ => false,
        };
        assert!(ok, "frame of resource {id} shows {byte:#04x}");
    }
}

/// Reads every byte of the picture, row by row as an encoder does, and
/// says which byte values it holds.
fn byte_set(frame: &Frame) -> [bool; 256] {
    let mut seen = [false; 256];
    let row = usize::try_from(frame.width() * frame.format().bytes_per_pixel()).unwrap();
    let stride = usize::try_from(frame.stride()).unwrap();
    for y in 0..usize::try_from(frame.height()).unwrap() {
        for &b in &frame.data()[y * stride..][..row] {
            seen[usize::from(b)] = true;
        }
    }
    seen
}

/// A backing list: mostly page runs (zero-copy), sometimes unaligned,
/// scattered over both regions and the hole, many single pages (a mapping
/// each), or raw values.
fn backing_list(s: &mut Script) -> Vec<BackingEntry> {
    let run = |s: &mut Script| {
        let page = usize::from(s.u16()) % (PAGES + 16);
        // Past the last page: the hole above the low region.
        let addr = if page < PAGES {
            page_addr(page).0
        } else {
            HALF + ((page - PAGES) * PAGE) as u64
        };
        let skew = |b: u8| if b >= 0xC0 { u32::from(b & 0x3F) } else { 0 };
        let shift = skew(s.u8());
        let len = (1 + u32::from(s.u8() % 64)) * PAGE_BYTES - skew(s.u8());
        entry(addr + u64::from(shift), len)
    };
    match s.u8() % 4 {
        0 => vec![run(s)],
        1 => (0..=s.u8() % 64).map(|_| run(s)).collect(),
        2 => {
            let first = usize::from(s.u16()) % PAGES;
            let count = usize::from(s.u16()) % (commands::MAX_BACKING_ENTRIES as usize + 2);
            (0..=count)
                .map(|i| entry(page_addr((first + 2 * i) % PAGES).0, PAGE_BYTES))
                .collect()
        }
        _ => (0..s.u8() % 8).map(|_| entry(s.u64(), s.u32())).collect(),
    }
}

/// The reader thread: polls sources and the table and reads every frame
/// until told to stop. Frames here race with the guest, so only one thing
/// is checked: a frame whose read began after pages were taken back never
/// shows the secrets put in them.
fn read_until_stopped(shared: &Arc<Shared>, epoch: &AtomicU64, stop: &AtomicBool) {
    let mut sources: Vec<ScanoutSource> = (0..SCANOUTS.len())
        .map(|i| ScanoutSource::new(shared.clone(), u32::try_from(i).unwrap()))
        .collect();
    let table = ResourceTable::new(shared.clone());
    let check = |frame: Option<Frame>, before: u64| {
        let Some(frame) = frame else {
            return;
        };
        let secret = byte_set(&frame)[usize::from(SECRET)];
        // The reads above happen before the count is read again.
        fence(Ordering::Acquire);
        let taken_back_meanwhile = epoch.load(Ordering::Relaxed) != before;
        assert!(
            !secret || taken_back_meanwhile,
            "a frame shows taken-back pages"
        );
    };
    loop {
        let last = stop.load(Ordering::Acquire);
        for source in &mut sources {
            let before = epoch.load(Ordering::Acquire);
            source.poll(Instant::now());
            check(source.frame(), before);
        }
        for id in table.ids() {
            let before = epoch.load(Ordering::Acquire);
            if let Some(snapshot) = table.get(id) {
                check(snapshot.frame(), before);
            }
        }
        if last {
            break;
        }
        thread::yield_now();
    }
}
