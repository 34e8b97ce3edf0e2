//! [`Inbox`]: how subscribers and control calls reach a pipeline's core
//! from other threads: a queue plus the [`Doorbell`] its driver sleeps on.

use std::sync::mpsc;

use zerocast_encode::EncoderSettings;
use zerocast_frame::Doorbell;

use crate::core::Event;

/// A message for a pipeline.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Command {
    Core(Event),
    Reconfigure(EncoderSettings),
    Stop,
}

/// The sending side; cheap to clone, one per subscriber.
#[derive(Debug, Clone)]
pub(crate) struct Inbox {
    tx: mpsc::Sender<Command>,
    bell: Doorbell,
}

impl Inbox {
    pub fn new(bell: Doorbell) -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel();
        (Inbox { tx, bell }, rx)
    }

    /// Queues `command` and wakes the driver. A pipeline that has stopped
    /// has nobody to tell: the command is dropped.
    pub fn send(&self, command: Command) {
        if self.tx.send(command).is_ok() {
            self.bell.ring();
        }
    }

    pub fn event(&self, event: Event) {
        self.send(Command::Core(event));
    }
}
