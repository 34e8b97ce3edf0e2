//! Scanouts (the guest's virtual monitors): which resource each shows, when
//! it was last flushed, where its cursor is.

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
    /// Flushes of the shown resource that touched the shown part.
    flushes: u64,
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
            flushes: 0,
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

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Flushes that touched the shown part so far, and when the last one came.
    pub fn flushes(&self) -> (u64, Option<Instant>) {
        (self.flushes, self.flushed_at)
    }

    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    pub fn resource_id(&self) -> u32 {
        self.resource_id
    }

    /// Shows `rect` of `resource_id` (0 turns the scanout off).
    pub fn show(&mut self, resource_id: u32, rect: Rect) {
        self.resource_id = resource_id;
        self.rect = rect;
    }

    /// Notes a flush of the shown resource; true if it touched the shown part.
    pub fn flushed(&mut self, resource_id: u32, rect: &Rect, now: Instant) -> bool {
        let hit =
            resource_id != 0 && resource_id == self.resource_id && rect.intersects(&self.rect);
        if hit {
            self.flushes += 1;
            self.flushed_at = Some(now);
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

    /// The shown part of the shown resource, if it has backing.
    pub fn snapshot(&self, resources: &Resources) -> Option<ResourceSnapshot> {
        let resource = resources.get(self.resource_id).ok()?;
        resource.snapshot(self.resource_id, self.rect)
    }
}
