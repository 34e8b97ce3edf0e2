//! When a long-running command stops: after `--duration`, on Ctrl-C, or on
//! SIGTERM (what service managers and test harnesses send), so that QEMU and
//! the other helpers are shut down in order.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

pub async fn stopped(duration: Option<f64>) {
    let timer = async {
        match duration {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s.max(0.0))).await,
            None => std::future::pending().await,
        }
    };
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = timer => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term => tracing::info!("SIGTERM: stopping"),
    }
}
