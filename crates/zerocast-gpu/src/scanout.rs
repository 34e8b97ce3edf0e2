//! Scanouts (the guest's virtual monitors): which resource each shows,
//! whether its picture is still valid, when it last changed, where its
//! cursor is.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Instant;

use zerocast_frame::{Cursor, CursorImage, CursorSink, Damage};

use crate::commands::{CursorCommand, DisplayMode, Rect};

/// Changes whose damage a scanout keeps for its readers: a reader that
/// falls further behind (more flushes between two of its polls) reads
/// everything. A pipeline polls at least once per frame, and guests flush
/// at most once per frame or two, a page-flipping test at ~1,000 a second.
const DAMAGE_LOG: usize = 64;
use crate::resource::Resources;
use crate::snapshot::ResourceSnapshot;

/// The guest's cursor on one scanout, as its last cursor commands set it.
#[derive(Debug, Clone, Default)]
pub(crate) struct CursorState {
    /// The image's top-left corner, as Linux's driver sends it (its plane's
    /// position); the hotspot is at `x + hot_x`.
    pub x: u32,
    pub y: u32,
    pub hot_x: u32,
    pub hot_y: u32,
    /// The image read at the last UPDATE_CURSOR; `None` when hidden.
    pub image: Option<Arc<CursorImage>>,
    /// Bumped by every UPDATE_CURSOR and reset: readers tell a new image
    /// from a move by it.
    pub generation: u64,
}

impl CursorState {
    /// As viewers get it: the hotspot's position, in scanout pixels.
    fn published(&self) -> Cursor {
        // The guest's u32 fields carry the plane's signed position.
        let signed = |v: u32| i32::from_ne_bytes(v.to_ne_bytes());
        Cursor {
            serial: self.generation,
            x: signed(self.x).wrapping_add(signed(self.hot_x)),
            y: signed(self.y).wrapping_add(signed(self.hot_y)),
            image: self.image.clone(),
        }
    }
}

/// One scanout's state.
#[derive(Debug)]
pub(crate) struct Scanout {
    /// The mode offered to the guest.
    mode: (u32, u32),
    /// Offered as connected (host-side hot-plug state).
    enabled: bool,
    /// The resource shown (0: none) and the part of it shown.
    resource_id: u32,
    rect: Rect,
    /// The guest has flushed the shown part since it bound the resource or
    /// last lost its picture: there is a picture to show.
    flushed: bool,
    /// Bumped whenever what readers should show changes: a flush of the
    /// shown part, the picture becoming invalid, the host switching the
    /// scanout on or off. Readers compare it with the value they last saw.
    changes: u64,
    /// When the last change was a flush, when it came.
    flushed_at: Option<Instant>,
    /// What each of the last [`DAMAGE_LOG`] changes damaged, in scanout
    /// pixels, by change number.
    damage_log: VecDeque<(u64, Damage)>,
    /// The shown resource or part changed since the last change: the next
    /// one damages everything, whatever the guest flushes.
    rebound: bool,
    cursor: CursorState,
    /// Where each change of the cursor goes (streams' cursor channels),
    /// published under the device lock so they see changes in order; a
    /// sink whose stream has gone is dropped at the next change.
    cursor_sinks: Vec<Weak<dyn CursorSink>>,
}

impl Scanout {
    pub fn new(width: u32, height: u32) -> Self {
        Scanout {
            mode: (width, height),
            enabled: true,
            resource_id: 0,
            rect: Rect::default(),
            flushed: false,
            changes: 0,
            flushed_at: None,
            damage_log: VecDeque::with_capacity(DAMAGE_LOG),
            rebound: false,
            cursor: CursorState::default(),
            cursor_sinks: Vec::new(),
        }
    }

    pub fn mode(&self) -> (u32, u32) {
        self.mode
    }

    pub fn display_mode(&self) -> DisplayMode {
        DisplayMode {
            width: self.mode.0,
            height: self.mode.1,
            enabled: self.enabled,
        }
    }

    /// Changes so far, and when the last one came if it was a flush.
    pub fn changes(&self) -> (u64, Option<Instant>) {
        (self.changes, self.flushed_at)
    }

    fn changed(&mut self, flushed_at: Option<Instant>, damage: Damage) {
        self.changes += 1;
        self.flushed_at = flushed_at;
        let damage = if std::mem::take(&mut self.rebound) {
            Damage::full()
        } else {
            damage
        };
        if self.damage_log.len() == DAMAGE_LOG {
            self.damage_log.pop_front();
        }
        self.damage_log.push_back((self.changes, damage));
    }

    /// What changed after change number `seen` (a reader's last; 0: none
    /// seen, everything), in scanout pixels.
    pub fn damage_since(&self, seen: u64) -> Damage {
        // The log must still hold the change right after `seen`.
        let oldest = self.damage_log.front().map_or(u64::MAX, |(n, _)| *n);
        if seen == 0 || seen + 1 < oldest {
            return Damage::full();
        }
        let mut damage = Damage::none();
        for (_, d) in self.damage_log.iter().filter(|(n, _)| *n > seen) {
            damage.add(d);
        }
        damage
    }

    /// Switching a scanout off takes its picture from readers at once; on
    /// again, they get the guest's latest picture if it is still valid.
    pub fn set_enabled(&mut self, enabled: bool) {
        if enabled != self.enabled {
            self.enabled = enabled;
            self.changed(None, Damage::full());
        }
    }

    pub fn resource_id(&self) -> u32 {
        self.resource_id
    }

    /// Shows `rect` of `resource_id` (checked, backed, not 0), from its
    /// next flush on if the scanout has no valid picture now.
    pub fn show(&mut self, resource_id: u32, rect: Rect) {
        // Another picture (a page flip): the guest's next flush names what
        // it changed in that one, not what differs from the last shown.
        self.rebound |= (resource_id, rect) != (self.resource_id, self.rect);
        self.resource_id = resource_id;
        self.rect = rect;
    }

    /// Shows nothing (guest's SET_SCANOUT to resource 0, UNREF of the
    /// shown resource, device reset): the picture is gone.
    pub fn unbind(&mut self) {
        self.resource_id = 0;
        self.rect = Rect::default();
        self.invalidate();
    }

    /// The picture's pages are no longer the shown resource's (its backing
    /// was detached): readers must drop it. Nothing is shown until the
    /// guest flushes the resource again, with new backing.
    pub fn invalidate(&mut self) {
        self.flushed = false;
        self.changed(None, Damage::full());
    }

    /// Notes a flush of the shown resource; true if it touched the shown
    /// part. A flush while switched off is a change only once switched on.
    pub fn flushed(&mut self, resource_id: u32, rect: &Rect, now: Instant) -> bool {
        let hit =
            resource_id != 0 && resource_id == self.resource_id && rect.intersects(&self.rect);
        if hit {
            self.flushed = true;
            if self.enabled {
                let damage = Damage::rect(self.shown_part(rect));
                self.changed(Some(now), damage);
            }
        }
        hit
    }

    /// The part of `rect` (resource pixels, intersecting the shown part)
    /// that is shown, in scanout pixels.
    fn shown_part(&self, rect: &Rect) -> Rect {
        let part = rect.intersection(&self.rect);
        Rect::new(
            part.x - self.rect.x,
            part.y - self.rect.y,
            part.width,
            part.height,
        )
    }

    #[cfg(test)]
    pub fn cursor(&self) -> CursorState {
        self.cursor.clone()
    }

    #[cfg(test)]
    pub fn cursor_sinks_is_empty(&self) -> bool {
        self.cursor_sinks.is_empty()
    }

    /// Sends the cursor to `sink` now and on every later change.
    pub fn add_cursor_sink(&mut self, sink: &Arc<dyn CursorSink>) {
        sink.publish(self.cursor.published());
        self.cursor_sinks.push(Arc::downgrade(sink));
    }

    fn publish_cursor(&mut self) {
        let cursor = self.cursor.published();
        self.cursor_sinks.retain(|sink| match sink.upgrade() {
            Some(sink) => {
                sink.publish(cursor.clone());
                true
            }
            None => false,
        });
    }

    /// A new cursor image (read and checked by the caller), or none
    /// (resource 0: hidden).
    pub fn update_cursor(&mut self, c: &CursorCommand, image: Option<Arc<CursorImage>>) {
        self.cursor = CursorState {
            x: c.x,
            y: c.y,
            hot_x: c.hot_x,
            hot_y: c.hot_y,
            image,
            generation: self.cursor.generation + 1,
        };
        self.publish_cursor();
    }

    pub fn move_cursor(&mut self, c: &CursorCommand) {
        self.cursor.x = c.x;
        self.cursor.y = c.y;
        self.publish_cursor();
    }

    /// A new driver session starts without a cursor.
    pub fn hide_cursor(&mut self) {
        self.cursor = CursorState {
            generation: self.cursor.generation + 1,
            ..CursorState::default()
        };
        self.publish_cursor();
    }

    /// The picture readers should show: the shown part of the shown
    /// resource if the scanout is on, the guest has flushed it and it still
    /// has backing; `None`: no signal.
    pub fn picture(&self, resources: &Resources) -> Option<ResourceSnapshot> {
        if !self.enabled || !self.flushed {
            return None;
        }
        let resource = resources.get(self.resource_id).ok()?;
        resource.snapshot(self.resource_id, self.rect)
    }
}
