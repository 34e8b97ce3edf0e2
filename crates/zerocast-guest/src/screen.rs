//! What is on screen: the framebuffer the active CRTC shows, its geometry,
//! format and virtio-gpu resource id, and (for the baseline) its pixels.
//!
//! A page-flipping program cycles through a few framebuffers, so each is
//! described once (GETFB2 and RESOURCE_INFO) and cached by framebuffer id;
//! polling for a flip is then one GETCRTC. Framebuffer ids are reused after
//! a program removes its framebuffers: the cache is dropped when the CRTC
//! stops showing anything (which removing them causes), when it grows past
//! a few entries, and when the host no longer knows a resource.

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use drm::buffer::{self, DrmModifier};
use drm::control::framebuffer::{self, PlanarInfo};
use drm::control::{crtc, from_u32, Device as ControlDevice};
use zerocast_frame::PixelFormat;

use crate::card::Card;
use crate::dumb_map::DumbMap;
use crate::{ioctl, wire_format};

/// More framebuffers than any page-flipping program uses at once.
const MAX_CACHED: usize = 8;
/// How often to look again for a CRTC that shows something.
const SCANOUT_POLL: Duration = Duration::from_millis(50);

/// One framebuffer, as a FRAME_REQUEST needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framebuffer {
    /// DRM framebuffer id.
    pub fb: u32,
    /// virtio-gpu resource id: the name the host knows it by.
    pub resource_id: u32,
    pub width: u32,
    pub height: u32,
    /// Bytes per row.
    pub pitch: u32,
    /// The framebuffer's DRM format.
    pub drm_fourcc: u32,
    /// The format to name in a request ([`wire_format::request_format`]).
    pub format: PixelFormat,
}

struct Entry {
    info: Framebuffer,
    /// Mapped on first use, by the baseline only.
    pixels: Option<DumbMap>,
}

pub struct Screen {
    card: Card,
    crtc: Option<crtc::Handle>,
    cache: HashMap<u32, Entry>,
}

impl Screen {
    pub fn new(card: Card) -> Self {
        Screen {
            card,
            crtc: None,
            cache: HashMap::new(),
        }
    }

    pub fn crtc_id(&self) -> Option<u32> {
        self.crtc.map(u32::from)
    }

    /// Waits until `deadline` for a CRTC to show a framebuffer, and
    /// describes it.
    pub fn wait_for_scanout(&mut self, deadline: Instant) -> Result<Framebuffer> {
        loop {
            if let Some(fb) = self.current()? {
                return self.describe(fb);
            }
            if Instant::now() >= deadline {
                bail!("no CRTC shows a framebuffer (is a program drawing on the display?)");
            }
            thread::sleep(SCANOUT_POLL);
        }
    }

    /// The id of the framebuffer on screen now: one GETCRTC while the same
    /// CRTC stays active. `None` when no CRTC shows anything.
    pub fn current(&mut self) -> Result<Option<u32>> {
        if let Some(handle) = self.crtc {
            if let Some(fb) = shown(&self.card.get_crtc(handle).context("DRM GETCRTC")?) {
                return Ok(Some(fb));
            }
        }
        // The display went dark or moved: its owner may have removed its
        // framebuffers, and their ids may come back naming new ones.
        self.forget();
        let resources = self.card.resource_handles().context("DRM GETRESOURCES")?;
        for &handle in resources.crtcs() {
            if let Some(fb) = shown(&self.card.get_crtc(handle).context("DRM GETCRTC")?) {
                self.crtc = Some(handle);
                return Ok(Some(fb));
            }
        }
        Ok(None)
    }

    /// Geometry, format and resource id of framebuffer `fb`.
    pub fn describe(&mut self, fb: u32) -> Result<Framebuffer> {
        Ok(self.cache_entry(fb)?.info)
    }

    /// Framebuffer `fb` and its pixels (`pitch * height` bytes), mapped on
    /// first use. Works for dumb buffers, which is what KMS programs and
    /// virtio-gpu's 2D path use.
    pub fn pixels(&mut self, fb: u32) -> Result<(Framebuffer, &[u8])> {
        self.cache_entry(fb)?;
        let (card, entry) = (&self.card, self.cache.get_mut(&fb).expect("cached above"));
        let map = match entry.pixels.take() {
            Some(map) => map,
            None => {
                let len = entry.info.pitch as usize * entry.info.height as usize;
                with_handle(card, fb, |_, handle| {
                    DumbMap::new(card, handle, len).context("DRM MAP_DUMB + mmap")
                })?
            }
        };
        Ok((entry.info, entry.pixels.insert(map).pixels()))
    }

    /// Forgets every framebuffer and the CRTC, so the next calls ask the
    /// kernel afresh (the host said a resource is gone, or ids were reused).
    pub fn forget(&mut self) {
        self.cache.clear();
        self.crtc = None;
    }

    fn cache_entry(&mut self, fb: u32) -> Result<&mut Entry> {
        if !self.cache.contains_key(&fb) {
            if self.cache.len() >= MAX_CACHED {
                self.cache.clear();
            }
            let info = with_handle(&self.card, fb, |planar, handle| {
                inspect(&self.card, fb, planar, handle)
            })?;
            self.cache.insert(fb, Entry { info, pixels: None });
        }
        Ok(self.cache.get_mut(&fb).expect("inserted above"))
    }
}

/// The framebuffer a CRTC scans out, if it is active.
fn shown(info: &crtc::Info) -> Option<u32> {
    info.mode()?;
    info.framebuffer().map(u32::from)
}

/// Runs `f` with framebuffer `fb`'s GETFB2 answer and a GEM handle of its
/// buffer in this process, and closes the handle after: each GETFB2 makes a
/// new handle, which would otherwise pile up.
fn with_handle<T>(
    card: &Card,
    fb: u32,
    f: impl FnOnce(&PlanarInfo, buffer::Handle) -> Result<T>,
) -> Result<T> {
    let handle: framebuffer::Handle = from_u32(fb).context("framebuffer id 0")?;
    let planar = card
        .get_planar_framebuffer(handle)
        .map_err(|e| anyhow::anyhow!("DRM GETFB2 of framebuffer {fb}: {e}"))?;
    let Some(gem) = planar.buffers()[0] else {
        bail!("DRM GETFB2 gave no buffer handle for framebuffer {fb}: the agent must run as root (CAP_SYS_ADMIN)");
    };
    let result = f(&planar, gem);
    if let Err(e) = card.close_buffer(gem) {
        eprintln!("zerocast-guest: closing GEM handle {}: {e}", u32::from(gem));
    }
    result
}

/// Checks that framebuffer `fb` is one linear, packed plane the host can
/// read, and finds its resource id.
fn inspect(card: &Card, fb: u32, planar: &PlanarInfo, gem: buffer::Handle) -> Result<Framebuffer> {
    let drm_fourcc = planar.pixel_format() as u32;
    let format = wire_format::request_format(drm_fourcc)?;
    if planar.buffers()[1].is_some() || planar.offsets()[0] != 0 {
        bail!("framebuffer {fb} has several planes or an offset; only packed single-plane framebuffers are supported");
    }
    if !matches!(planar.modifier(), None | Some(DrmModifier::Linear)) {
        bail!(
            "framebuffer {fb} is tiled ({:?}); only linear framebuffers are supported",
            planar.modifier()
        );
    }
    let resource_id = ioctl::resource_id(card, gem).with_context(|| {
        format!("virtio-gpu RESOURCE_INFO of framebuffer {fb} (is this a virtio-gpu card?)")
    })?;
    let (width, height) = planar.size();
    Ok(Framebuffer {
        fb,
        resource_id,
        width,
        height,
        pitch: planar.pitches()[0],
        drm_fourcc,
        format,
    })
}
