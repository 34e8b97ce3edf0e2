//! The guest's desktop session as viewers reach it: what a `control`
//! viewer may ask of it (a mode, a clipboard, typed text) and the guest's
//! clipboard coming back. View-only viewers get neither.

use std::sync::Arc;

use tokio::sync::watch;
use zerocast_session::HostMessage;

/// Something that carries requests to an agent in the guest's session.
pub trait GuestSession: Send + Sync {
    /// Hands `msg` on; dropped when no agent is connected, and superseded
    /// by a newer resize or clipboard when the agent is behind.
    fn request(&self, msg: HostMessage);

    /// The guest's clipboard text, changing whenever a program in the
    /// guest takes the clipboard (`None` before that).
    fn clipboard(&self) -> watch::Receiver<Option<Arc<str>>>;
}
