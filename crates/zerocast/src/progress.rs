//! A progress bar on stderr that log lines do not tear. tracing writes to
//! stderr too: while a bar is shown, each log line is written with the bar
//! hidden and the bar is drawn again after it ([`LogOut`]).

use std::io::Write;
use std::sync::{Mutex, PoisonError};

use indicatif::ProgressBar;

/// The bar on screen now, if any.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn shown() -> Option<ProgressBar> {
    SHOWN.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Shows `bar` until the guard drops, routing log lines around it.
pub struct Shown(ProgressBar);

impl Shown {
    pub fn new(bar: ProgressBar) -> Shown {
        *SHOWN.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
        Shown(bar)
    }

    pub fn bar(&self) -> &ProgressBar {
        &self.0
    }
}

impl Drop for Shown {
    fn drop(&mut self) {
        SHOWN.lock().unwrap_or_else(PoisonError::into_inner).take();
        self.0.finish_and_clear();
    }
}

/// tracing's writer: stderr, around the bar when one is shown.
pub struct LogOut;

impl Write for LogOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match shown() {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
