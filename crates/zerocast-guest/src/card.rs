//! Opening the DRM card beside the program that owns the display.
//!
//! The agent only reads: which framebuffer a CRTC shows (GETCRTC, open to
//! anyone), and that framebuffer's GEM handle (GETFB2, which hands out
//! handles to the DRM master or to CAP_SYS_ADMIN: the agent runs as root).
//! It must never hold DRM master, or the display's owner could not set
//! modes or flip. The kernel makes the first opener of a card without a
//! master its master, so the agent waits until another process has the
//! card open before opening it, and drops master if it got it anyway.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use drm::control::Device as ControlDevice;
use drm::Device as _;

/// How often to look again for the card node or its owner.
const POLL: Duration = Duration::from_millis(50);

/// An open DRM card node.
pub struct Card(File);

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl drm::Device for Card {}
impl ControlDevice for Card {}

impl Card {
    /// Waits until `deadline` for the node and for another process to hold
    /// it open, then opens it without keeping DRM master. With no owner by
    /// the deadline it opens anyway (a console on fbcon has none).
    pub fn open_beside_owner(path: &Path, deadline: Instant) -> Result<Card> {
        loop {
            match holder(path) {
                Ok(Some(pid)) => {
                    println!("zerocast-guest: {} is held by pid {pid}", path.display());
                    break;
                }
                Ok(None) if Instant::now() >= deadline => {
                    println!(
                        "zerocast-guest: no other process holds {}; opening it anyway",
                        path.display()
                    );
                    break;
                }
                Err(e) if e.kind() != io::ErrorKind::NotFound || Instant::now() >= deadline => {
                    return Err(e).with_context(|| format!("looking for {}", path.display()));
                }
                _ => thread::sleep(POLL),
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let card = Card(file);
        // Fails with EINVAL when we are not master, which is what we want.
        if card.release_master_lock().is_ok() {
            println!("zerocast-guest: dropped the DRM master the kernel gave us");
        }
        Ok(card)
    }
}

/// A process other than this one with `node` open, if any. Fails with
/// NotFound while the node does not exist.
fn holder(node: &Path) -> io::Result<Option<u32>> {
    let node = node.canonicalize()?;
    let me = std::process::id();
    for entry in fs::read_dir("/proc")? {
        let Some(pid) = entry?.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if pid != me && holds(pid, &node) {
            return Ok(Some(pid));
        }
    }
    Ok(None)
}

/// Whether process `pid` has `node` open. Processes that exit or hide their
/// fds while we look count as not holding it.
fn holds(pid: u32, node: &Path) -> bool {
    let Ok(fds) = fs::read_dir(PathBuf::from(format!("/proc/{pid}/fd"))) else {
        return false;
    };
    fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
        .any(|target| target == node)
}
