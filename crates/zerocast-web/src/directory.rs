//! The host's list of VMs, for a gateway that serves many (`zerocast
//! serve`): `/` becomes an index page, `/api/vms` the same as JSON, and each
//! VM's viewer is at `/view?scanout=N`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use crate::gateway::Gateway;

/// Whatever knows the VMs: their names and which streams are theirs.
pub trait Directory: Send + Sync {
    fn vms(&self) -> Vec<VmEntry>;
}

/// One VM, as its backend registered it.
#[derive(Debug, Clone, Serialize)]
pub struct VmEntry {
    pub name: String,
    pub uuid: String,
    /// Keyboard and pointer reach the guest.
    pub input: bool,
    /// Its displays: stream ids in the gateway's registry, in head order.
    pub scanouts: Vec<u32>,
}

/// One display of a VM, as `/api/vms` shows it.
#[derive(Serialize)]
struct ScanoutListing {
    id: u32,
    /// The last frame's size; `None` before the first.
    width: Option<u32>,
    height: Option<u32>,
    viewers: usize,
    /// Frames delivered in the last second.
    fps: usize,
    /// The viewer page, relative to the gateway (add `&token=`).
    view: String,
}

#[derive(Serialize)]
struct VmListing {
    name: String,
    uuid: String,
    state: &'static str,
    input: bool,
    scanouts: Vec<ScanoutListing>,
}

fn listings(g: &Gateway, directory: &dyn Directory) -> Vec<VmListing> {
    let now = Instant::now();
    directory
        .vms()
        .into_iter()
        .map(|vm| VmListing {
            scanouts: vm
                .scanouts
                .iter()
                .filter_map(|&id| g.registry.stream(id))
                .map(|stream| {
                    let mut stats = stream.stats();
                    ScanoutListing {
                        id: stream.id(),
                        width: stats.size.map(|s| s.0),
                        height: stats.size.map(|s| s.1),
                        viewers: stream.subscribers(),
                        fps: stats.recent.per_second(now),
                        view: format!("/view?scanout={}", stream.id()),
                    }
                })
                .collect(),
            name: vm.name,
            uuid: vm.uuid,
            state: "running",
            input: vm.input,
        })
        .collect()
}

pub(crate) async fn vms(State(g): State<Arc<Gateway>>) -> impl IntoResponse {
    let list = g
        .directory
        .as_deref()
        .map(|d| listings(&g, d))
        .unwrap_or_default();
    Json(list)
}

/// The index page: a table of the VMs, refreshed from `/api/vms`; links
/// carry the page's own token on.
pub(crate) async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        INDEX_PAGE,
    )
}

const INDEX_PAGE: &str = include_str!("../assets/vms.html");
