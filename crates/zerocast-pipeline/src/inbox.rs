//! [`Inbox`]: how subscribers and control calls reach a pipeline's core
//! from other threads: a queue plus the [`Doorbell`] its driver sleeps on.

use std::sync::mpsc;

use zerocast_encode::EncoderSettings;
use zerocast_frame::Doorbell;

use crate::core::Event;

/// Which of a pipeline's outputs a subscriber's events are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// The whole-picture stream (HXFR subscribers, helix's clients).
    Whole,
    /// The striped stream (zerocast's own web viewer).
    Stripes,
}

/// A message for a pipeline.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Command {
    Core(Output, Event),
    Reconfigure(EncoderSettings),
    Stop,
}

/// The sending side; cheap to clone, one per subscriber.
#[derive(Debug, Clone)]
pub(crate) struct Inbox {
    tx: mpsc::Sender<Command>,
    bell: Doorbell,
    /// What [`Inbox::event`] is about.
    output: Output,
}

impl Inbox {
    pub fn new(bell: Doorbell) -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel();
        let output = Output::Whole;
        (Inbox { tx, bell, output }, rx)
    }

    /// The same queue, for events about `output`.
    pub fn for_output(&self, output: Output) -> Inbox {
        Inbox {
            output,
            ..self.clone()
        }
    }

    /// Queues `command` and wakes the driver. A pipeline that has stopped
    /// has nobody to tell: the command is dropped.
    pub fn send(&self, command: Command) {
        if self.tx.send(command).is_ok() {
            self.bell.ring();
        }
    }

    pub fn output(&self) -> Output {
        self.output
    }

    pub fn event(&self, event: Event) {
        self.send(Command::Core(self.output, event));
    }
}
