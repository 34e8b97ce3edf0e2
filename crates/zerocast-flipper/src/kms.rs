//! Kernel mode setting: open the DRM card, pick the connected output, and
//! page-flip between dumb buffers.
//!
//! virtio-gpu implements the legacy page flip through the atomic helpers. A
//! flip of a dumb buffer makes the guest driver send TRANSFER_TO_HOST_2D,
//! SET_SCANOUT and RESOURCE_FLUSH for the whole plane, so no DIRTYFB call is
//! needed. virtio-gpu has no vblank interrupt: the kernel completes the flip
//! event as soon as the commit is done, so the flip rate is bounded by the
//! guest and the device, not by a refresh rate.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use drm::buffer::{Buffer as _, DrmFourcc};
use drm::control::dumbbuffer::{DumbBuffer, DumbMapping};
use drm::control::{
    connector, crtc, framebuffer, Device as ControlDevice, Event, Mode, ModeTypeFlags,
    PageFlipFlags,
};

/// How often to look again for a card or a connected output that is not there yet.
const POLL: Duration = Duration::from_millis(100);

/// An open DRM card (a `/dev/dri/cardN` node).
pub struct Card(File);

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl drm::Device for Card {}
impl ControlDevice for Card {}

impl Card {
    /// Opens the card, waiting until `deadline` for it to appear: the node
    /// is created only once virtio-gpu has probed the device, which can come
    /// after the module load returns.
    pub fn open(path: &Path, deadline: Instant) -> Result<Card> {
        loop {
            match OpenOptions::new().read(true).write(true).open(path) {
                Ok(file) => return Ok(Card(file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && Instant::now() < deadline => {
                    thread::sleep(POLL)
                }
                Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
            }
        }
    }
}

/// The display to draw on: a connected connector, its mode and a CRTC that
/// can drive it.
pub struct Output {
    pub connector: connector::Handle,
    /// Connector name as the kernel spells it, e.g. `Virtual-1`.
    pub name: String,
    pub crtc: crtc::Handle,
    pub mode: Mode,
}

impl Output {
    /// Finds the first connected output, waiting until `deadline`: the host
    /// may report the display a moment after the card appears.
    pub fn find(card: &Card, deadline: Instant) -> Result<Output> {
        loop {
            if let Some(output) = Self::connected(card)? {
                return Ok(output);
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "no connected connector with a mode and a usable CRTC"
                ));
            }
            thread::sleep(POLL);
        }
    }

    fn connected(card: &Card) -> Result<Option<Output>> {
        let resources = card.resource_handles().context("DRM GETRESOURCES")?;
        for &handle in resources.connectors() {
            // Force a probe so a display that arrived since boot is seen.
            let info = card
                .get_connector(handle, true)
                .context("DRM GETCONNECTOR")?;
            if info.state() != connector::State::Connected {
                continue;
            }
            let modes = info.modes();
            let Some(&mode) = modes
                .iter()
                .find(|m| m.mode_type().contains(ModeTypeFlags::PREFERRED))
                .or(modes.first())
            else {
                continue;
            };
            for &encoder in info.encoders() {
                let encoder = card.get_encoder(encoder).context("DRM GETENCODER")?;
                if let Some(&crtc) = resources.filter_crtcs(encoder.possible_crtcs()).first() {
                    return Ok(Some(Output {
                        connector: handle,
                        name: format!("{:?}-{}", info.interface(), info.interface_id()),
                        crtc,
                        mode,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Width and height of the mode in pixels.
    pub fn size(&self) -> (u32, u32) {
        let (w, h) = self.mode.size();
        (u32::from(w), u32::from(h))
    }
}

/// Creates `count` XRGB8888 dumb buffers of `size` pixels.
pub fn create_dumb_buffers(card: &Card, size: (u32, u32), count: usize) -> Result<Vec<DumbBuffer>> {
    (0..count)
        .map(|_| {
            card.create_dumb_buffer(size, DrmFourcc::Xrgb8888, 32)
                .context("DRM CREATE_DUMB")
        })
        .collect()
}

/// One buffer of the swapchain: its framebuffer and its mapped pixels.
struct Slot<'a> {
    fb: framebuffer::Handle,
    pixels: DumbMapping<'a>,
}

/// A ring of three buffers shown in turn. At most one flip is in flight, so
/// the buffer to draw next is never the one on screen nor the one queued:
/// the next frame can be drawn while the previous flip completes.
pub struct Swapchain<'a> {
    card: &'a Card,
    output: &'a Output,
    slots: Vec<Slot<'a>>,
    pitch: u32,
    /// Index of the buffer to draw the next frame into.
    back: usize,
    flip_pending: bool,
    /// The first frame needs a mode set; later ones are page flips.
    mode_set: bool,
}

/// The number of buffers a [`Swapchain`] needs for drawing to overlap a flip.
pub const BUFFERS: usize = 3;

impl<'a> Swapchain<'a> {
    /// Adds a framebuffer for each dumb buffer and maps it. The buffers stay
    /// mapped, and are freed by the kernel when the program exits.
    pub fn new(card: &'a Card, output: &'a Output, dumbs: &'a mut [DumbBuffer]) -> Result<Self> {
        assert_eq!(dumbs.len(), BUFFERS, "a swapchain takes {BUFFERS} buffers");
        let pitch = dumbs[0].pitch();
        let slots = dumbs
            .iter_mut()
            .map(|dumb| {
                let fb = card.add_framebuffer(dumb, 24, 32).context("DRM ADDFB")?;
                let pixels = card.map_dumb_buffer(dumb).context("DRM MAP_DUMB")?;
                Ok(Slot { fb, pixels })
            })
            .collect::<Result<_>>()?;
        Ok(Swapchain {
            card,
            output,
            slots,
            pitch,
            back: 0,
            flip_pending: false,
            mode_set: false,
        })
    }

    /// Bytes per row of every buffer.
    pub fn pitch(&self) -> u32 {
        self.pitch
    }

    /// Framebuffer ids, in ring order.
    pub fn framebuffers(&self) -> impl Iterator<Item = framebuffer::Handle> + '_ {
        self.slots.iter().map(|s| s.fb)
    }

    /// Pixels of every buffer, for painting them before the first frame.
    pub fn all_pixels(&mut self) -> impl Iterator<Item = &mut [u8]> + use<'_, 'a> {
        self.slots.iter_mut().map(|s| &mut *s.pixels)
    }

    /// The buffer to draw the next frame into, and its index in the ring.
    pub fn back(&mut self) -> (usize, &mut [u8]) {
        (self.back, &mut self.slots[self.back].pixels)
    }

    /// Shows the back buffer: a mode set the first time, then a page flip
    /// after the previous flip has completed.
    pub fn present(&mut self) -> Result<()> {
        let fb = self.slots[self.back].fb;
        if self.mode_set {
            self.wait_flip()?;
            self.card
                .page_flip(self.output.crtc, fb, PageFlipFlags::EVENT, None)
                .context("DRM PAGE_FLIP")?;
            self.flip_pending = true;
        } else {
            self.card
                .set_crtc(
                    self.output.crtc,
                    Some(fb),
                    (0, 0),
                    &[self.output.connector],
                    Some(self.output.mode),
                )
                .context("DRM SETCRTC (is another program DRM master?)")?;
            self.mode_set = true;
        }
        self.back = (self.back + 1) % self.slots.len();
        Ok(())
    }

    /// Waits for the flip in flight, if any, to complete.
    pub fn wait_flip(&mut self) -> Result<()> {
        while self.flip_pending {
            for event in self.card.receive_events().context("reading DRM events")? {
                if let Event::PageFlip(_) = event {
                    self.flip_pending = false;
                }
            }
        }
        Ok(())
    }
}
