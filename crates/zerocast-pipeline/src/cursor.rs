//! [`CursorChannel`]: a stream's hardware cursor, beside its frames but not
//! through the encoder: the source publishes each change from its own
//! thread, every viewer holds a [`watch::Receiver`] and reads the latest
//! state when it gets to it, so a burst of moves costs a slow viewer one
//! message, not a queue.

use tokio::sync::watch;
use zerocast_frame::{Cursor, CursorSink};

/// The latest cursor of one stream.
#[derive(Debug)]
pub struct CursorChannel {
    tx: watch::Sender<Cursor>,
}

impl CursorChannel {
    /// No hardware cursor until the source publishes one.
    pub fn new() -> Self {
        CursorChannel {
            tx: watch::Sender::new(Cursor::default()),
        }
    }

    /// A viewer's end: the current state at once, then every change.
    pub fn subscribe(&self) -> watch::Receiver<Cursor> {
        self.tx.subscribe()
    }
}

impl Default for CursorChannel {
    fn default() -> Self {
        Self::new()
    }
}

impl CursorSink for CursorChannel {
    fn publish(&self, cursor: Cursor) {
        // A guest repeating itself (the same move twice) wakes no viewer.
        self.tx.send_if_modified(|current| {
            let changed = *current != cursor;
            if changed {
                *current = cursor;
            }
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use zerocast_frame::CursorImage;

    fn at(serial: u64, x: i32, y: i32, image: Option<Arc<CursorImage>>) -> Cursor {
        Cursor {
            serial,
            x,
            y,
            image,
        }
    }

    #[test]
    fn viewers_see_the_latest_state_and_no_repeats() {
        let channel = CursorChannel::new();
        let mut early = channel.subscribe();
        assert_eq!(*early.borrow_and_update(), Cursor::default());
        let image = Arc::new(CursorImage::new(1, 1, (0, 0), vec![1, 2, 3, 4]).unwrap());
        channel.publish(at(1, 5, 5, Some(image.clone())));
        for x in 6..50 {
            channel.publish(at(1, x, 5, Some(image.clone())));
        }
        // Coalesced: one change seen, the last position.
        assert!(early.has_changed().unwrap());
        assert_eq!(early.borrow_and_update().x, 49);
        assert!(!early.has_changed().unwrap());
        channel.publish(at(1, 49, 5, Some(image.clone())));
        assert!(!early.has_changed().unwrap(), "the same state again");
        // A late viewer gets the current state, image included.
        let late = channel.subscribe();
        assert_eq!(late.borrow().image.as_deref(), Some(&*image));
        channel.publish(at(2, 49, 5, None));
        assert!(early.has_changed().unwrap());
        assert!(early.borrow_and_update().image.is_none());
    }
}
