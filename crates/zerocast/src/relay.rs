//! One VM display in `zerocast serve`: a published stream in the daemon's
//! registry, fed from the VM's own GPU backend. The backend encodes beside
//! the guest's memory; the relay subscribes to it over HXFR (the backend's
//! Unix socket) only while someone watches here, so an unwatched VM costs
//! nothing, and asks it for a keyframe when a viewer needs one.
//!
//! Two threads per display while watched: this one, asleep on the stream's
//! doorbell (viewers come and go), and a reader that hands each access unit
//! on as it arrives. Frames are not decoded; their size comes from the SPS.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use zerocast_encode::sps;
use zerocast_frame::Doorbell;
use zerocast_hxfr::{encode, Decoder, Limits, Message, Packet};
use zerocast_pipeline::{PublishedFrame, PublishedStream};

/// After the backend could not be reached, the next try waits this long
/// (or for a viewer to come or go).
const RETRY: Duration = Duration::from_secs(1);
/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 * 1024;

/// What a relay thread needs.
pub struct Relay {
    pub stream: Arc<zerocast_pipeline::Stream>,
    pub bell: Doorbell,
    /// The backend's HXFR socket and its scanout id there.
    pub hxfr: PathBuf,
    pub scanout: u32,
    pub fps: u32,
    /// Set (and the bell rung) when the VM is gone.
    pub gone: Arc<AtomicBool>,
}

impl Relay {
    fn published(&self) -> &PublishedStream {
        self.stream
            .as_published()
            .expect("a relay feeds a published stream")
    }

    /// Runs until the VM is gone.
    pub fn run(self) {
        while !self.gone.load(Ordering::SeqCst) {
            if self.published().subscribers() == 0 {
                self.bell.wait(None);
                continue;
            }
            if let Err(e) = self.watch() {
                tracing::warn!(
                    stream = self.stream.id(),
                    "relay from {}: {e}",
                    self.hxfr.display()
                );
                self.bell.wait(Some(Instant::now() + RETRY));
            }
        }
    }

    /// Subscribes to the backend and relays until nobody watches, the VM
    /// is gone, or the backend hangs up.
    fn watch(&self) -> std::io::Result<()> {
        let mut conn = UnixStream::connect(&self.hxfr)?;
        let session = u16::try_from(self.scanout).unwrap_or(u16::MAX);
        send(
            &mut conn,
            session,
            Message::Subscribe {
                scanout_id: self.scanout,
            },
        )?;
        let ended = Arc::new(AtomicBool::new(false));
        let reader = {
            let conn = conn.try_clone()?;
            let writer = conn.try_clone()?;
            let stream = self.stream.clone();
            let (bell, ended, fps) = (self.bell.clone(), ended.clone(), self.fps);
            std::thread::Builder::new()
                .name(format!("relay-{}", self.stream.id()))
                .spawn(move || {
                    if let Err(e) = read_frames(conn, writer, &stream, session, fps) {
                        tracing::info!(stream = stream.id(), "backend stream ended: {e}");
                    }
                    ended.store(true, Ordering::SeqCst);
                    bell.ring();
                })?
        };
        let result = loop {
            self.bell.wait(None);
            if self.gone.load(Ordering::SeqCst) || ended.load(Ordering::SeqCst) {
                break Ok(());
            }
            if self.published().subscribers() == 0 {
                break Ok(());
            }
            if self.published().keyframe_wanted() {
                if let Err(e) = send(&mut conn, session, Message::KeyframeReq) {
                    break Err(e);
                }
            }
        };
        // Ends the reader's read too; the backend sees its subscriber leave.
        let _ = conn.shutdown(std::net::Shutdown::Both);
        let _ = reader.join();
        result
    }
}

fn send(conn: &mut UnixStream, session: u16, message: Message) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    encode(&Packet::new(session, message), &mut b);
    conn.write_all(&b)
}

/// Hands every access unit the backend sends on to the stream's viewers.
fn read_frames(
    mut conn: UnixStream,
    mut writer: UnixStream,
    stream: &zerocast_pipeline::Stream,
    session: u16,
    fps: u32,
) -> std::io::Result<()> {
    let published = stream.as_published().expect("a published stream");
    let decoder = Decoder::new(Limits::CLIENT);
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut size = None;
    loop {
        let packet = loop {
            match decoder.decode(&mut buf) {
                Ok(Some(p)) => break p,
                Ok(None) => {}
                Err(e) => {
                    return Err(std::io::Error::other(format!(
                        "bad HXFR from the backend: {e}"
                    )))
                }
            }
            // Read straight into the buffer the access units are cut from.
            let filled = buf.len();
            buf.resize(filled + READ_SIZE, 0);
            let n = conn.read(&mut buf[filled..])?;
            buf.truncate(filled + n);
            if n == 0 {
                return Err(std::io::Error::other("the backend closed the connection"));
            }
        };
        match packet.message {
            Message::FrameResponse(r) => {
                // helix's peers send one NAL entry holding the access unit.
                let access_unit = match r.nals.as_slice() {
                    [one] => one.clone(),
                    many => many.concat().into(),
                };
                if r.is_keyframe {
                    size = sps::picture_size(&access_unit).or(size);
                }
                let Some((width, height)) = size else {
                    // Nothing to show before the first keyframe.
                    continue;
                };
                let keyframe_due = published.publish(PublishedFrame {
                    access_unit,
                    keyframe: r.is_keyframe,
                    captured_unix_ns: r.pts_ns,
                    width,
                    height,
                    fps,
                });
                if keyframe_due {
                    send(&mut writer, session, Message::KeyframeReq)?;
                }
            }
            Message::SubscribeResp(r) if !r.success => {
                return Err(std::io::Error::other(format!(
                    "the backend has no scanout {}",
                    r.scanout_id
                )));
            }
            Message::Error(e) => {
                return Err(std::io::Error::other(format!(
                    "the backend refused: error {} ({})",
                    e.code, e.message
                )));
            }
            _ => {}
        }
    }
}
