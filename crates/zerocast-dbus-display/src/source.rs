//! The console's current picture, as QEMU's listener calls leave it, read
//! by the encoding pipeline as a `FrameSource`.
//!
//! Two kinds of picture. With `ScanoutMap` QEMU shares its surface (a
//! memfd) and `UpdateMap` only says where it changed: the pipeline reads
//! QEMU's memory, no pixel is copied. With `Scanout`/`Update` the pixels
//! come in the messages: they are written into the shared picture under
//! its lock, and each poll copies the changed rectangles into the reader's
//! own buffer, so the encoder never reads memory that another thread of
//! ours writes.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use zerocast_frame::frame::required_len;
use zerocast_frame::{Damage, Doorbell, Frame, FrameSource, PixelFormat, Rect, SourceEvent};

/// A picture's geometry, checked against its bytes before any is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub format: PixelFormat,
}

impl Geometry {
    /// Bytes the picture spans (the last row without its padding).
    pub fn span(&self) -> Result<usize, String> {
        let n = required_len(self.width, self.height, self.stride, self.format)
            .map_err(|e| e.to_string())?;
        usize::try_from(n).map_err(|_| format!("{n} bytes do not fit in memory"))
    }
}

/// QEMU's surface, mapped read-only.
pub struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    offset: usize,
}

// SAFETY: the mapping is read-only, only read through `bytes`, and
// unmapped once, by its owner's drop.
unsafe impl Send for Mapping {}
// SAFETY: as for Send: shared readers only read.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `fd` after checking that `offset + needed` bytes are there: a
    /// read past the end of a memfd would be a SIGBUS, not an error.
    pub fn new(fd: &OwnedFd, offset: u32, needed: usize) -> Result<Mapping, String> {
        // SAFETY: `stat` is plain data; all zeroes is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes into `st`, which lives across the call.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(format!("fstat: {}", std::io::Error::last_os_error()));
        }
        let size = usize::try_from(st.st_size).map_err(|_| "negative file size".to_string())?;
        let offset = offset as usize;
        if offset.checked_add(needed).is_none_or(|end| end > size) {
            return Err(format!(
                "the shared surface has {size} bytes, the picture needs {needed} from offset {offset}"
            ));
        }
        // QEMU allocates its shareable surfaces with F_SEAL_SHRINK unless it
        // cannot: without it a shrink behind our back would fault, so say so.
        // SAFETY: F_GET_SEALS only reads the fd's seals.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
            tracing::debug!(
                seals,
                "QEMU's shared surface is not sealed against shrinking"
            );
        }
        // SAFETY: a fresh read-only shared mapping of `size` bytes of `fd`.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        Ok(Mapping {
            ptr,
            len: size,
            offset,
        })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is mapped while `self` lives; `offset` was
        // checked against `len`. QEMU writes it as the guest draws, as the
        // guest writes its own framebuffer on the vhost-user path.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
            .get(self.offset..)
            .unwrap_or(&[])
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// Pixels of a picture.
enum Pixels {
    Copied(Vec<u8>),
    Mapped(Arc<Mapping>),
}

struct Picture {
    geometry: Geometry,
    pixels: Pixels,
}

#[derive(Default)]
struct State {
    picture: Option<Picture>,
    /// Bumped by every new picture (a scanout), so a reader starts afresh.
    generation: u64,
    /// What changed since the reader's last poll.
    damage: Damage,
    changed_at: Option<Instant>,
    /// A new picture came and no update after it yet: QEMU sends a flip as
    /// the new surface, then its update a moment later.
    replaced_alone: bool,
    closed: bool,
}

/// What the listener and the reader share.
#[derive(Default)]
pub struct Shared {
    state: Mutex<State>,
    bell: Mutex<Option<Doorbell>>,
    /// Counters: pictures QEMU sent whole, rectangles, and bytes that came
    /// in messages (the copy path) against updates by shared memory.
    pub scanouts: AtomicU64,
    pub updates: AtomicU64,
    pub bytes_received: AtomicU64,
    pub map_updates: AtomicU64,
    /// Wakes whoever waits for QEMU's end ([`Shared::closed`]).
    ended: tokio::sync::Notify,
}

/// How long a new surface waits for the update that follows it.
const FLIP_HOLD: Duration = Duration::from_millis(3);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared::default())
    }

    fn ring(&self) {
        if let Some(bell) = lock(&self.bell).as_ref() {
            bell.ring();
        }
    }

    fn replace(&self, picture: Picture) {
        let mut s = lock(&self.state);
        s.picture = Some(picture);
        s.generation += 1;
        s.damage = Damage::full();
        s.changed_at = Some(Instant::now());
        s.replaced_alone = true;
        drop(s);
        self.scanouts.fetch_add(1, Ordering::Relaxed);
        self.ring();
    }

    /// `Scanout`: a whole new picture in the message.
    pub fn scanout(&self, geometry: Geometry, data: Vec<u8>) -> Result<(), String> {
        let len = geometry.span()?;
        if data.len() < len {
            return Err(format!(
                "{} bytes of pixels for a {len}-byte picture",
                data.len()
            ));
        }
        self.bytes_received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.replace(Picture {
            geometry,
            pixels: Pixels::Copied(data),
        });
        Ok(())
    }

    /// `ScanoutMap`: QEMU's surface itself, shared.
    pub fn scanout_map(&self, geometry: Geometry, fd: &OwnedFd, offset: u32) -> Result<(), String> {
        let mapping = Mapping::new(fd, offset, geometry.span()?)?;
        self.replace(Picture {
            geometry,
            pixels: Pixels::Mapped(Arc::new(mapping)),
        });
        Ok(())
    }

    /// `Update`: the rectangle's pixels (`stride` and `format` are those of
    /// `data`, which must match the picture's format).
    pub fn update(
        &self,
        rect: (i32, i32, i32, i32),
        stride: u32,
        format: PixelFormat,
        data: &[u8],
    ) -> Result<(), String> {
        let mut s = lock(&self.state);
        let Some(picture) = s.picture.as_mut() else {
            return Err("Update before any Scanout".into());
        };
        let g = picture.geometry;
        let r = checked_rect(rect, g)?;
        let Pixels::Copied(pixels) = &mut picture.pixels else {
            return Err("Update (with pixels) on a shared-memory picture".into());
        };
        if format != g.format {
            return Err(format!(
                "an update in {format:?} for a {:?} picture",
                g.format
            ));
        }
        let update = Geometry {
            width: r.width,
            height: r.height,
            stride,
            format,
        };
        let need = update.span()?;
        if data.len() < need {
            return Err(format!(
                "{} bytes of pixels for a {need}-byte update",
                data.len()
            ));
        }
        let bpp = g.format.bytes_per_pixel() as usize;
        let row = r.width as usize * bpp;
        for y in 0..r.height as usize {
            let from = y * stride as usize;
            let to = (r.y as usize + y) * g.stride as usize + r.x as usize * bpp;
            pixels[to..to + row].copy_from_slice(&data[from..from + row]);
        }
        s.damage.add_rect(r);
        s.changed_at = Some(Instant::now());
        s.replaced_alone = false;
        drop(s);
        self.updates.fetch_add(1, Ordering::Relaxed);
        self.bytes_received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.ring();
        Ok(())
    }

    /// `UpdateMap`: where the shared surface changed.
    pub fn update_map(&self, rect: (i32, i32, i32, i32)) -> Result<(), String> {
        let mut s = lock(&self.state);
        let Some(picture) = s.picture.as_ref() else {
            return Err("UpdateMap before any ScanoutMap".into());
        };
        if !matches!(picture.pixels, Pixels::Mapped(_)) {
            return Err("UpdateMap on a picture that is not shared".into());
        }
        let r = checked_rect(rect, picture.geometry)?;
        s.damage.add_rect(r);
        s.changed_at = Some(Instant::now());
        s.replaced_alone = false;
        drop(s);
        self.map_updates.fetch_add(1, Ordering::Relaxed);
        self.ring();
        Ok(())
    }

    /// The picture's size now, for absolute pointer positions.
    pub fn size(&self) -> Option<(u32, u32)> {
        lock(&self.state)
            .picture
            .as_ref()
            .map(|p| (p.geometry.width, p.geometry.height))
    }

    /// True once QEMU's end has gone.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// The listener's connection is gone: QEMU stopped or dropped us.
    pub fn close(&self) {
        lock(&self.state).closed = true;
        self.ring();
        self.ended.notify_waiters();
    }

    /// Resolves once QEMU's end has gone, without polling.
    pub async fn closed(&self) {
        loop {
            // Registered before the check, so a close in between still wakes it.
            let ended = self.ended.notified();
            if self.is_closed() {
                return;
            }
            ended.await;
        }
    }
}

/// A rectangle from QEMU, inside the picture.
fn checked_rect((x, y, w, h): (i32, i32, i32, i32), g: Geometry) -> Result<Rect, String> {
    let u = |v: i32| u32::try_from(v).map_err(|_| format!("negative value {v} in a rectangle"));
    let r = Rect::new(u(x)?, u(y)?, u(w)?, u(h)?);
    if r.is_empty() || !r.is_inside(g.width, g.height) {
        return Err(format!(
            "rectangle {r:?} is not inside the {}x{} picture",
            g.width, g.height
        ));
    }
    Ok(r)
}

/// What the reader shows.
enum Shown {
    Copied(Geometry, Vec<u8>),
    Mapped(Geometry, Arc<Mapping>),
}

/// The console as the pipeline reads it.
pub struct DbusSource {
    shared: Arc<Shared>,
    shown: Option<Shown>,
    generation: u64,
    describe: String,
}

impl DbusSource {
    pub(crate) fn new(shared: Arc<Shared>, describe: String) -> DbusSource {
        DbusSource {
            shared,
            shown: None,
            generation: 0,
            describe,
        }
    }

    /// The counters the listener keeps.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

impl FrameSource for DbusSource {
    fn attach(&mut self, bell: Doorbell) {
        *lock(&self.shared.bell) = Some(bell);
    }

    fn poll(&mut self, now: Instant) -> SourceEvent {
        let mut guard = lock(&self.shared.state);
        let s = &mut *guard;
        if s.closed {
            return SourceEvent::Closed;
        }
        let Some(picture) = s.picture.as_ref() else {
            return SourceEvent::Idle { wake_at: None };
        };
        let captured_at = s.changed_at.unwrap_or(now);
        // A new surface waits a moment for its update, so that one flip is
        // one encode, not two a frame slot apart.
        if s.replaced_alone {
            let until = captured_at + FLIP_HOLD;
            if now < until {
                return SourceEvent::Idle {
                    wake_at: Some(until),
                };
            }
        }
        if s.generation != self.generation {
            self.generation = s.generation;
            let g = picture.geometry;
            self.shown = Some(match &picture.pixels {
                // The one copy of the message path's pictures: from the
                // listener's buffer to ours.
                Pixels::Copied(p) => Shown::Copied(g, p.clone()),
                Pixels::Mapped(m) => Shown::Mapped(g, m.clone()),
            });
            // A new surface is a new picture, not a new stream: everything
            // changed, and a new size restarts the encoder by itself.
            s.damage = Damage::none();
            s.replaced_alone = false;
            return SourceEvent::Changed {
                captured_at,
                damage: Damage::full(),
            };
        }
        let damage = s.damage.take();
        if damage.is_empty() {
            return SourceEvent::Idle { wake_at: None };
        }
        if let (Some(Shown::Copied(g, ours)), Pixels::Copied(theirs)) =
            (&mut self.shown, &picture.pixels)
        {
            copy_rects(g, &damage, theirs, ours);
        }
        SourceEvent::Changed {
            captured_at,
            damage,
        }
    }

    fn frame(&self) -> Option<Frame<'_>> {
        let (g, bytes) = match self.shown.as_ref()? {
            Shown::Copied(g, p) => (g, p.as_slice()),
            Shown::Mapped(g, m) => (g, m.bytes()),
        };
        Frame::new(g.width, g.height, g.stride, g.format, bytes).ok()
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn closed_reason(&self) -> &'static str {
        "QEMU's D-Bus display went away"
    }
}

/// Copies the damaged rows (or the whole picture when the damage is full).
fn copy_rects(g: &Geometry, damage: &Damage, from: &[u8], to: &mut [u8]) {
    if damage.is_full() {
        to.copy_from_slice(from);
        return;
    }
    let bpp = g.format.bytes_per_pixel() as usize;
    for r in damage.rects() {
        for y in r.y as usize..(r.y + r.height) as usize {
            let start = y * g.stride as usize + r.x as usize * bpp;
            let end = start + r.width as usize * bpp;
            to[start..end].copy_from_slice(&from[start..end]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(width: u32, height: u32) -> Geometry {
        Geometry {
            width,
            height,
            stride: width * 4,
            format: PixelFormat::Xrgb8888,
        }
    }

    #[test]
    fn updates_reach_the_reader_with_their_damage() {
        let shared = Shared::new();
        let mut src = DbusSource::new(shared.clone(), "test".into());
        let now = Instant::now();
        assert!(matches!(src.poll(now), SourceEvent::Idle { .. }));
        shared.scanout(geometry(4, 2), vec![0; 32]).unwrap();
        // A new surface alone waits briefly for its update...
        let now = Instant::now();
        assert!(matches!(
            src.poll(now),
            SourceEvent::Idle { wake_at: Some(_) }
        ));
        // ...and comes with it as one full change.
        shared
            .update((1, 1, 2, 1), 8, PixelFormat::Xrgb8888, &[7; 8])
            .unwrap();
        let SourceEvent::Changed { damage, .. } = src.poll(now) else {
            panic!()
        };
        assert!(damage.is_full());
        shared
            .update((1, 1, 2, 1), 8, PixelFormat::Xrgb8888, &[7; 8])
            .unwrap();
        let SourceEvent::Changed { damage, .. } = src.poll(now) else {
            panic!()
        };
        assert_eq!(damage.rects(), &[Rect::new(1, 1, 2, 1)]);
        let frame = src.frame().unwrap();
        assert_eq!(&frame.data()[16..20], &[0; 4]);
        assert_eq!(&frame.data()[20..28], &[7; 8]);
        assert!(matches!(src.poll(now), SourceEvent::Idle { .. }));
        shared.close();
        assert_eq!(src.poll(now), SourceEvent::Closed);
    }

    #[test]
    fn bad_input_from_qemu_is_refused_before_any_read() {
        let shared = Shared::new();
        assert!(shared
            .update((0, 0, 1, 1), 4, PixelFormat::Xrgb8888, &[0; 4])
            .is_err());
        // Too few bytes for the size, a stride shorter than a row, no size.
        assert!(shared.scanout(geometry(4, 2), vec![0; 31]).is_err());
        let narrow = Geometry {
            stride: 15,
            ..geometry(4, 2)
        };
        assert!(shared.scanout(narrow, vec![0; 64]).is_err());
        assert!(shared.scanout(geometry(0, 2), vec![]).is_err());
        shared.scanout(geometry(4, 2), vec![0; 32]).unwrap();
        // Outside the picture, negative, too few bytes, another format.
        assert!(shared
            .update((3, 0, 2, 1), 8, PixelFormat::Xrgb8888, &[0; 8])
            .is_err());
        assert!(shared
            .update((-1, 0, 1, 1), 4, PixelFormat::Xrgb8888, &[0; 4])
            .is_err());
        assert!(shared
            .update((0, 0, 2, 2), 8, PixelFormat::Xrgb8888, &[0; 15])
            .is_err());
        assert!(shared
            .update((0, 0, 1, 1), 4, PixelFormat::Argb8888, &[0; 4])
            .is_err());
        assert!(shared.update_map((0, 0, 1, 1)).is_err());
    }
}
