//! When a long-running command stops: after `--duration`, on Ctrl-C, or on
//! SIGTERM (what service managers and test harnesses send), so that QEMU and
//! the other helpers are shut down in order.

use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};

/// The stop of one command, watched from the moment it is made: a command
/// makes it before it prints its addresses, so that a SIGTERM sent as soon
/// as they are read stops it in order instead of killing it (the signal's
/// default) before anything watches.
pub struct Stop {
    duration: Option<f64>,
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
}

impl Stop {
    pub fn watch(duration: Option<f64>) -> Stop {
        let listen = |kind: SignalKind, name: &str| {
            signal(kind)
                .map_err(|e| tracing::warn!("cannot watch for {name}: {e}"))
                .ok()
        };
        Stop {
            duration,
            interrupt: listen(SignalKind::interrupt(), "Ctrl-C"),
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }

    /// Until the duration has passed or a signal came.
    pub async fn stopped(mut self) {
        let timer = async {
            match self.duration {
                Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = timer => {}
            _ = received(&mut self.interrupt) => {}
            _ = received(&mut self.terminate) => tracing::info!("SIGTERM: stopping"),
        }
    }
}

/// The next delivery of `signal`; never, if it is not watched.
async fn received(signal: &mut Option<Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
