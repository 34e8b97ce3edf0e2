//! Scanouts (the guest's virtual monitors): which resource each shows,
//! whether its picture is still valid, when it last changed, where its
//! cursor is.

use std::time::Instant;

use crate::commands::{CursorCommand, DisplayMode, Rect};
use crate::resource::Resources;
use crate::snapshot::ResourceSnapshot;

/// The guest's cursor on one scanout, as its last cursor commands set it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CursorState {
    /// Cursor image resource (0: hidden).
    pub resource_id: u32,
    pub x: u32,
    pub y: u32,
    pub hot_x: u32,
    pub hot_y: u32,
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
    cursor: CursorState,
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
            cursor: CursorState::default(),
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

    fn changed(&mut self, flushed_at: Option<Instant>) {
        self.changes += 1;
        self.flushed_at = flushed_at;
    }

    /// Switching a scanout off takes its picture from readers at once; on
    /// again, they get the guest's latest picture if it is still valid.
    pub fn set_enabled(&mut self, enabled: bool) {
        if enabled != self.enabled {
            self.enabled = enabled;
            self.changed(None);
        }
    }

    pub fn resource_id(&self) -> u32 {
        self.resource_id
    }

    /// Shows `rect` of `resource_id` (checked, backed, not 0), from its
    /// next flush on if the scanout has no valid picture now.
    pub fn show(&mut self, resource_id: u32, rect: Rect) {
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
        self.changed(None);
    }

    /// Notes a flush of the shown resource; true if it touched the shown
    /// part. A flush while switched off is a change only once switched on.
    pub fn flushed(&mut self, resource_id: u32, rect: &Rect, now: Instant) -> bool {
        let hit =
            resource_id != 0 && resource_id == self.resource_id && rect.intersects(&self.rect);
        if hit {
            self.flushed = true;
            if self.enabled {
                self.changed(Some(now));
            }
        }
        hit
    }

    /// Tracked so cursor commands are checked and applied; no viewer sees
    /// the cursor yet, so only tests read it.
    #[cfg(test)]
    pub fn cursor(&self) -> CursorState {
        self.cursor
    }

    pub fn update_cursor(&mut self, c: &CursorCommand) {
        self.cursor = CursorState {
            resource_id: c.resource_id,
            x: c.x,
            y: c.y,
            hot_x: c.hot_x,
            hot_y: c.hot_y,
        };
    }

    pub fn move_cursor(&mut self, c: &CursorCommand) {
        self.cursor.x = c.x;
        self.cursor.y = c.y;
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
