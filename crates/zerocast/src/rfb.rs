//! The viewer side of RFB 3.8 (VNC), as much as the benchmark needs to
//! count what a VNC server delivers: updates, rectangles, bytes. Sans I/O:
//! [`RfbClient::feed`] takes the server's bytes as they arrive (any split),
//! [`RfbClient::take_output`] gives what to send back, [`RfbClient::poll_event`]
//! what happened. No pixel is decoded; every length is parsed, so the
//! client stays in step with the stream.
//!
//! Encodings advertised: ZRLE first, then CopyRect and Raw, plus the Cursor
//! and DesktopSize pseudo-encodings. ZRLE because it is what a typical
//! viewer gets from QEMU when it asks for lossless compression (RealVNC's
//! default, TigerVNC's lossless choice) and its payload carries its own
//! length (a u32 before the zlib data), so it is counted exactly without
//! inflating anything. Tight, the other common one, would need its filter
//! and palette parsed (and may go lossy JPEG) to find where a rectangle ends.

use std::collections::VecDeque;
use std::fmt;

/// What a 3.8 client says it speaks.
const VERSION: &[u8; 12] = b"RFB 003.008\n";

/// Encoding numbers (RFC 6143, section 7.7).
pub const ENCODING_RAW: i32 = 0;
pub const ENCODING_COPY_RECT: i32 = 1;
pub const ENCODING_ZRLE: i32 = 16;
pub const ENCODING_CURSOR: i32 = -239;
pub const ENCODING_DESKTOP_SIZE: i32 = -223;

/// What [`RfbClient`] asks for, in order of preference.
pub const ENCODINGS: [i32; 5] = [
    ENCODING_ZRLE,
    ENCODING_COPY_RECT,
    ENCODING_RAW,
    ENCODING_CURSOR,
    ENCODING_DESKTOP_SIZE,
];

/// Security type "None".
const SECURITY_NONE: u8 = 1;

/// Longest server name or refusal reason accepted: text, not pixels.
pub const MAX_TEXT: u32 = 4096;
/// Longest clipboard text accepted from the server.
pub const MAX_CUT_TEXT: u32 = 1 << 20;
/// Largest cursor side accepted (QEMU's are 64x64).
pub const MAX_CURSOR_SIDE: u16 = 1024;

/// The server said or sent something this client cannot follow. After one,
/// the stream is out of step and every later [`RfbClient::feed`] fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RfbError {
    /// Not an `RFB xxx.yyy\n` greeting, or older than 3.8.
    Version(String),
    /// The server refused the connection (no security types, or failed
    /// security), with its reason.
    Refused(String),
    /// Security type None is not offered; these are.
    NoSecurityNone(Vec<u8>),
    /// Only true-colour 8, 16 or 32 bits per pixel have known sizes.
    PixelFormat {
        bits_per_pixel: u8,
    },
    UnknownMessage(u8),
    /// An encoding this client did not advertise: its length is unknown.
    UnknownEncoding(i32),
    /// A pixel rectangle reaching past the framebuffer.
    RectOutside {
        x: u16,
        y: u16,
        w: u16,
        h: u16,
    },
    /// A length past what its message can need.
    TooLong {
        what: &'static str,
        len: u64,
        max: u64,
    },
    /// An earlier error left the stream out of step.
    Failed,
}

impl fmt::Display for RfbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RfbError::Version(v) => write!(f, "not an RFB 3.8 server: greeting {v:?}"),
            RfbError::Refused(why) => write!(f, "the VNC server refused: {why}"),
            RfbError::NoSecurityNone(types) => write!(
                f,
                "the VNC server wants authentication (security types {types:?}); start it without a password"
            ),
            RfbError::PixelFormat { bits_per_pixel } => {
                write!(f, "unsupported pixel format: {bits_per_pixel} bits per pixel")
            }
            RfbError::UnknownMessage(t) => write!(f, "unknown server message type {t}"),
            RfbError::UnknownEncoding(e) => write!(f, "rectangle in encoding {e}, never asked for"),
            RfbError::RectOutside { x, y, w, h } => {
                write!(f, "rectangle {w}x{h} at {x},{y} outside the framebuffer")
            }
            RfbError::TooLong { what, len, max } => {
                write!(f, "{what} of {len} bytes, more than {max}")
            }
            RfbError::Failed => write!(f, "the RFB stream is out of step after an earlier error"),
        }
    }
}

impl std::error::Error for RfbError {}

/// The server's framebuffer, from ServerInit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub width: u16,
    pub height: u16,
    pub bytes_per_pixel: u8,
    pub name: String,
}

/// One whole FramebufferUpdate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Update {
    /// Rectangles carrying pixels (Raw, CopyRect, ZRLE).
    pub rects: u32,
    /// Pseudo-rectangles (cursor shape, desktop size).
    pub pseudo_rects: u32,
    /// Pixels the pixel rectangles cover.
    pub area: u64,
    /// The whole message on the wire, headers included.
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake is done; updates follow.
    Ready(ServerInfo),
    Update(Update),
}

/// Where the parser is: each state but `Skip` waits for a fixed number of
/// header bytes, `Skip` for payload it counts and drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Version,
    SecurityCount,
    SecurityTypes(u8),
    SecurityResult,
    ReasonLength,
    Reason(u32),
    ServerInit,
    ServerName(u32),
    MessageType,
    UpdateHeader,
    RectHeader,
    ZrleLength {
        w: u16,
        h: u16,
    },
    /// Payload of the current rectangle, or of a message outside updates.
    Skip {
        left: u64,
        in_rect: bool,
    },
    ColourMapHeader,
    CutTextHeader,
    Failed,
}

/// An RFB 3.8 viewer that asks for every change (an incremental update
/// request after each update, as a viewer does) and reports each update.
#[derive(Debug)]
pub struct RfbClient {
    state: State,
    /// The header the current state is collecting (at most a few bytes,
    /// or a name or reason of at most [`MAX_TEXT`]).
    header: Vec<u8>,
    output: Vec<u8>,
    events: VecDeque<Event>,
    width: u16,
    height: u16,
    bytes_per_pixel: u8,
    /// Bytes consumed since the start: an update's size is the difference.
    consumed: u64,
    update: Option<UpdateInProgress>,
}

#[derive(Debug)]
struct UpdateInProgress {
    rects_left: u16,
    started_at: u64,
    counted: Update,
}

impl Default for RfbClient {
    fn default() -> Self {
        Self::new()
    }
}

impl RfbClient {
    pub fn new() -> Self {
        RfbClient {
            state: State::Version,
            header: Vec::new(),
            output: Vec::new(),
            events: VecDeque::new(),
            width: 0,
            height: 0,
            bytes_per_pixel: 4,
            consumed: 0,
            update: None,
        }
    }

    /// Takes bytes from the server, in whatever pieces they arrived.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), RfbError> {
        // Bounded by the input: every pass consumes at least one byte.
        while !input.is_empty() {
            let taken = match &mut self.state {
                State::Failed => return Err(RfbError::Failed),
                State::Skip { left, in_rect } => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    *left -= n as u64;
                    let (done, in_rect) = (*left == 0, *in_rect);
                    self.consumed += n as u64;
                    if done {
                        self.after_payload(in_rect);
                    }
                    n
                }
                _ => {
                    let want = self.header_len() - self.header.len();
                    let n = want.min(input.len());
                    self.header.extend_from_slice(&input[..n]);
                    self.consumed += n as u64;
                    if n == want {
                        let header = std::mem::take(&mut self.header);
                        if let Err(e) = self.on_header(&header) {
                            self.state = State::Failed;
                            return Err(e);
                        }
                    }
                    n
                }
            };
            input = &input[taken..];
        }
        Ok(())
    }

    /// Bytes to send to the server (empty when there are none).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Header bytes the current state needs; never 0 (states that would
    /// need nothing are passed through at once).
    fn header_len(&self) -> usize {
        let text = |len: u32| usize::try_from(len).unwrap_or(usize::MAX);
        match self.state {
            State::Version => VERSION.len(),
            State::SecurityCount | State::MessageType => 1,
            State::SecurityTypes(n) => usize::from(n),
            State::SecurityResult | State::ReasonLength | State::ZrleLength { .. } => 4,
            State::Reason(len) | State::ServerName(len) => text(len),
            State::ServerInit => 24,
            State::UpdateHeader => 3,
            State::RectHeader => 12,
            State::ColourMapHeader => 5,
            State::CutTextHeader => 7,
            State::Skip { .. } | State::Failed => 1,
        }
    }

    fn on_header(&mut self, h: &[u8]) -> Result<(), RfbError> {
        match self.state {
            State::Version => {
                let greeting = String::from_utf8_lossy(h).into_owned();
                let version =
                    parse_version(h).ok_or_else(|| RfbError::Version(greeting.clone()))?;
                if version < (3, 8) {
                    return Err(RfbError::Version(greeting));
                }
                self.output.extend_from_slice(VERSION);
                self.state = State::SecurityCount;
            }
            State::SecurityCount => {
                self.state = match h[0] {
                    0 => State::ReasonLength,
                    n => State::SecurityTypes(n),
                };
            }
            State::SecurityTypes(_) => {
                if !h.contains(&SECURITY_NONE) {
                    return Err(RfbError::NoSecurityNone(h.to_vec()));
                }
                self.output.push(SECURITY_NONE);
                self.state = State::SecurityResult;
            }
            State::SecurityResult => {
                if be32(h) == 0 {
                    // ClientInit: shared, so a real viewer can watch too.
                    self.output.push(1);
                    self.state = State::ServerInit;
                } else {
                    self.state = State::ReasonLength;
                }
            }
            State::ReasonLength => {
                let len = be32(h);
                check_len("refusal reason", len.into(), MAX_TEXT.into())?;
                if len == 0 {
                    return Err(RfbError::Refused(String::new()));
                }
                self.state = State::Reason(len);
            }
            State::Reason(_) => {
                return Err(RfbError::Refused(String::from_utf8_lossy(h).into_owned()))
            }
            State::ServerInit => {
                self.width = be16(&h[0..]);
                self.height = be16(&h[2..]);
                let (bits_per_pixel, true_colour) = (h[4], h[7]);
                if !matches!(bits_per_pixel, 8 | 16 | 32) || true_colour == 0 {
                    return Err(RfbError::PixelFormat { bits_per_pixel });
                }
                self.bytes_per_pixel = bits_per_pixel / 8;
                let len = be32(&h[20..]);
                check_len("server name", len.into(), MAX_TEXT.into())?;
                match len {
                    0 => self.ready(""),
                    _ => self.state = State::ServerName(len),
                }
            }
            State::ServerName(_) => self.ready(&String::from_utf8_lossy(h)),
            State::MessageType => match h[0] {
                0 => self.state = State::UpdateHeader,
                1 => self.state = State::ColourMapHeader,
                2 => {} // Bell: nothing follows.
                3 => self.state = State::CutTextHeader,
                t => return Err(RfbError::UnknownMessage(t)),
            },
            State::UpdateHeader => {
                let rects = be16(&h[1..]);
                self.update = Some(UpdateInProgress {
                    rects_left: rects,
                    // The message type byte came just before.
                    started_at: self.consumed - 4,
                    counted: Update::default(),
                });
                match rects {
                    0 => self.finish_update(),
                    _ => self.state = State::RectHeader,
                }
            }
            State::RectHeader => self.on_rect(h)?,
            State::ZrleLength { w, h: height } => {
                let len = be32(h);
                check_len("ZRLE rectangle", len.into(), zrle_max(w, height))?;
                self.payload(len.into(), true);
            }
            State::ColourMapHeader => {
                let colours = u64::from(be16(&h[3..]));
                self.payload(colours * 6, false);
            }
            State::CutTextHeader => {
                let len = be32(&h[3..]);
                check_len("clipboard text", len.into(), MAX_CUT_TEXT.into())?;
                self.payload(len.into(), false);
            }
            State::Skip { .. } | State::Failed => unreachable!("no header in this state"),
        }
        Ok(())
    }

    fn on_rect(&mut self, h: &[u8]) -> Result<(), RfbError> {
        let (x, y, w, height) = (be16(h), be16(&h[2..]), be16(&h[4..]), be16(&h[6..]));
        let encoding = i32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        let area = u64::from(w) * u64::from(height);
        let bpp = u64::from(self.bytes_per_pixel);
        let is_pixels = matches!(encoding, ENCODING_RAW | ENCODING_COPY_RECT | ENCODING_ZRLE);
        if is_pixels
            && (u32::from(x) + u32::from(w) > u32::from(self.width)
                || u32::from(y) + u32::from(height) > u32::from(self.height))
        {
            return Err(RfbError::RectOutside { x, y, w, h: height });
        }
        if let Some(u) = &mut self.update {
            if is_pixels {
                u.counted.rects += 1;
                u.counted.area += area;
            } else {
                u.counted.pseudo_rects += 1;
            }
        }
        match encoding {
            ENCODING_RAW => self.payload(area * bpp, true),
            ENCODING_COPY_RECT => self.payload(4, true),
            ENCODING_ZRLE => self.state = State::ZrleLength { w, h: height },
            ENCODING_CURSOR => {
                let side = w.max(height);
                check_len("cursor side", side.into(), MAX_CURSOR_SIDE.into())?;
                // The image, then a bitmask with rows padded to bytes.
                let mask = u64::from(w).div_ceil(8) * u64::from(height);
                self.payload(area * bpp + mask, true);
            }
            ENCODING_DESKTOP_SIZE => {
                (self.width, self.height) = (w, height);
                self.payload(0, true);
            }
            e => return Err(RfbError::UnknownEncoding(e)),
        }
        Ok(())
    }

    /// Skips `len` payload bytes next; with none, goes on at once.
    fn payload(&mut self, len: u64, in_rect: bool) {
        match len {
            0 => self.after_payload(in_rect),
            left => self.state = State::Skip { left, in_rect },
        }
    }

    fn after_payload(&mut self, in_rect: bool) {
        let Some(u) = self.update.as_mut().filter(|_| in_rect) else {
            self.state = State::MessageType;
            return;
        };
        u.rects_left -= 1;
        match u.rects_left {
            0 => self.finish_update(),
            _ => self.state = State::RectHeader,
        }
    }

    fn finish_update(&mut self) {
        if let Some(u) = self.update.take() {
            let mut counted = u.counted;
            counted.bytes = self.consumed - u.started_at;
            self.events.push_back(Event::Update(counted));
        }
        self.request(true);
        self.state = State::MessageType;
    }

    fn ready(&mut self, name: &str) {
        let mut set = vec![2, 0];
        let count = u16::try_from(ENCODINGS.len()).unwrap_or(u16::MAX);
        set.extend_from_slice(&count.to_be_bytes());
        for e in ENCODINGS {
            set.extend_from_slice(&e.to_be_bytes());
        }
        self.output.extend_from_slice(&set);
        // The first request is for the whole screen, as a viewer's is.
        self.request(false);
        self.events.push_back(Event::Ready(ServerInfo {
            width: self.width,
            height: self.height,
            bytes_per_pixel: self.bytes_per_pixel,
            name: name.to_owned(),
        }));
        self.state = State::MessageType;
    }

    /// FramebufferUpdateRequest for the whole framebuffer.
    fn request(&mut self, incremental: bool) {
        self.output
            .extend_from_slice(&[3, u8::from(incremental), 0, 0, 0, 0]);
        self.output.extend_from_slice(&self.width.to_be_bytes());
        self.output.extend_from_slice(&self.height.to_be_bytes());
    }
}

/// The largest ZRLE payload a `w` x `h` rectangle can need: every pixel
/// raw (at most 4 bytes), a byte per 64x64 tile, and zlib's stored-block
/// overhead, doubled for slack.
fn zrle_max(w: u16, h: u16) -> u64 {
    let area = u64::from(w) * u64::from(h);
    let tiles = u64::from(w).div_ceil(64) * u64::from(h).div_ceil(64);
    2 * (area * 4 + tiles) + 4096
}

fn check_len(what: &'static str, len: u64, max: u64) -> Result<(), RfbError> {
    match len > max {
        true => Err(RfbError::TooLong { what, len, max }),
        false => Ok(()),
    }
}

/// `RFB 003.008\n` -> (3, 8).
fn parse_version(h: &[u8]) -> Option<(u32, u32)> {
    let text = std::str::from_utf8(h).ok()?;
    let rest = text.strip_prefix("RFB ")?.strip_suffix('\n')?;
    let (major, minor) = rest.split_once('.')?;
    let digits = |s: &str| {
        (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((digits(major)?, digits(minor)?))
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's side up to and including ServerInit for a `w` x `h`
    /// 32-bit framebuffer named "QEMU".
    fn handshake(w: u16, h: u16) -> Vec<u8> {
        let mut b = b"RFB 003.008\n".to_vec();
        b.extend([1, SECURITY_NONE]);
        b.extend(0u32.to_be_bytes());
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        // 32 bpp, depth 24, little endian, true colour, maxima, shifts, padding.
        b.extend([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
        b.extend(4u32.to_be_bytes());
        b.extend(b"QEMU");
        b
    }

    fn rect(x: u16, y: u16, w: u16, h: u16, encoding: i32) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [x, y, w, h] {
            b.extend(v.to_be_bytes());
        }
        b.extend(encoding.to_be_bytes());
        b
    }

    fn update(rects: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![0, 0];
        b.extend(u16::try_from(rects.len()).unwrap().to_be_bytes());
        for r in rects {
            b.extend(r);
        }
        b
    }

    /// A ZRLE rectangle whose payload is `len` bytes.
    fn zrle(x: u16, y: u16, w: u16, h: u16, len: u32) -> Vec<u8> {
        let mut b = rect(x, y, w, h, ENCODING_ZRLE);
        b.extend(len.to_be_bytes());
        b.extend(std::iter::repeat_n(0xAB, usize::try_from(len).unwrap()));
        b
    }

    fn events(c: &mut RfbClient) -> Vec<Event> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn updates(c: &mut RfbClient) -> Vec<Update> {
        events(c)
            .into_iter()
            .filter_map(|e| match e {
                Event::Update(u) => Some(u),
                Event::Ready(_) => None,
            })
            .collect()
    }

    fn incremental_request(w: u16, h: u16) -> Vec<u8> {
        let mut b = vec![3, 1, 0, 0, 0, 0];
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b
    }

    #[test]
    fn handshake_answers_and_asks_for_everything() {
        let mut c = RfbClient::new();
        c.feed(&handshake(1280, 800)).unwrap();
        let out = c.take_output();
        let mut expected = b"RFB 003.008\n".to_vec();
        expected.extend([SECURITY_NONE, 1]);
        expected.extend([2, 0, 0, 5]);
        for e in [16i32, 1, 0, -239, -223] {
            expected.extend(e.to_be_bytes());
        }
        expected.extend([3, 0, 0, 0, 0, 0, 0x05, 0x00, 0x03, 0x20]);
        assert_eq!(out, expected);
        assert_eq!(
            events(&mut c),
            [Event::Ready(ServerInfo {
                width: 1280,
                height: 800,
                bytes_per_pixel: 4,
                name: "QEMU".into()
            })]
        );
        assert!(c.take_output().is_empty());
    }

    #[test]
    fn updates_are_counted_whatever_the_split() {
        let mut server = handshake(64, 32);
        let cursor = {
            let mut r = rect(5, 9, 16, 3, ENCODING_CURSOR);
            // 16x3 pixels of 4 bytes, a mask of 2 bytes a row.
            r.extend(vec![7; 16 * 3 * 4 + 2 * 3]);
            r
        };
        let raw = {
            let mut r = rect(60, 30, 4, 2, ENCODING_RAW);
            r.extend(vec![1; 4 * 2 * 4]);
            r
        };
        let mut copy = rect(0, 0, 8, 8, ENCODING_COPY_RECT);
        copy.extend([0, 8, 0, 8]);
        let first = update(&[zrle(0, 0, 64, 32, 300), raw.clone(), cursor]);
        let second = update(&[copy.clone()]);
        let empty = update(&[]);
        let mut bell_and_cut = vec![2, 3, 0, 0, 0];
        bell_and_cut.extend(5u32.to_be_bytes());
        bell_and_cut.extend(b"hello");
        let mut colours = vec![1, 0, 0, 0, 0, 2];
        colours.extend([0; 12]);
        for part in [&first, &bell_and_cut, &second, &colours, &empty] {
            server.extend(part.iter());
        }
        let expected = [
            Update {
                rects: 2,
                pseudo_rects: 1,
                area: 64 * 32 + 8,
                bytes: first.len() as u64,
            },
            Update {
                rects: 1,
                pseudo_rects: 0,
                area: 64,
                bytes: second.len() as u64,
            },
            Update {
                bytes: 4,
                ..Update::default()
            },
        ];

        // All at once, byte by byte, and in uneven pieces: the same.
        for piece in [server.len(), 1, 7, 13, 4096] {
            let mut c = RfbClient::new();
            for chunk in server.chunks(piece) {
                c.feed(chunk).unwrap();
            }
            assert_eq!(updates(&mut c), expected, "pieces of {piece}");
            let out = c.take_output();
            // One incremental request after each update, as a viewer sends.
            let tail = incremental_request(64, 32).repeat(3);
            assert!(out.ends_with(&tail), "pieces of {piece}");
        }
    }

    #[test]
    fn desktop_size_changes_the_bounds() {
        let mut c = RfbClient::new();
        c.feed(&handshake(64, 32)).unwrap();
        let grown = update(&[rect(0, 0, 128, 64, ENCODING_DESKTOP_SIZE)]);
        c.feed(&grown).unwrap();
        c.feed(&update(&[zrle(64, 32, 64, 32, 10)])).unwrap();
        let u = updates(&mut c);
        assert_eq!((u[0].pseudo_rects, u[1].rects, u[1].area), (1, 1, 2048));
        let out = c.take_output();
        assert!(out.ends_with(&incremental_request(128, 64)));
    }

    #[test]
    fn hostile_lengths_are_refused_and_stay_refused() {
        let start = |extra: &[u8]| {
            let mut c = RfbClient::new();
            c.feed(&handshake(64, 32)).unwrap();
            (c.feed(extra), c)
        };
        // A ZRLE length no 8x8 rectangle needs.
        let mut big = update(&[rect(0, 0, 8, 8, ENCODING_ZRLE)]);
        big.extend(u32::MAX.to_be_bytes());
        let (result, mut c) = start(&big);
        assert!(matches!(
            result,
            Err(RfbError::TooLong {
                what: "ZRLE rectangle",
                len: 0xFFFF_FFFF,
                ..
            })
        ));
        assert_eq!(c.feed(&[0]), Err(RfbError::Failed));

        let outside = update(&[rect(60, 0, 8, 8, ENCODING_RAW)]);
        assert_eq!(
            start(&outside).0,
            Err(RfbError::RectOutside {
                x: 60,
                y: 0,
                w: 8,
                h: 8
            })
        );
        let mut cut = vec![3, 0, 0, 0];
        cut.extend(u32::MAX.to_be_bytes());
        assert!(matches!(start(&cut).0, Err(RfbError::TooLong { .. })));
        let cursor = update(&[rect(0, 0, 4000, 4000, ENCODING_CURSOR)]);
        assert!(matches!(start(&cursor).0, Err(RfbError::TooLong { .. })));
        let hextile = update(&[rect(0, 0, 8, 8, 5)]);
        assert_eq!(start(&hextile).0, Err(RfbError::UnknownEncoding(5)));
        assert_eq!(start(&[9]).0, Err(RfbError::UnknownMessage(9)));

        // A name longer than any name.
        let mut name = handshake(64, 32);
        let at = name.len() - 8;
        name[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            RfbClient::new().feed(&name),
            Err(RfbError::TooLong {
                what: "server name",
                ..
            })
        ));
    }

    #[test]
    fn refusals_and_old_servers_say_why() {
        let mut refused = b"RFB 003.008\n".to_vec();
        refused.push(0);
        refused.extend(7u32.to_be_bytes());
        refused.extend(b"go away");
        assert_eq!(
            RfbClient::new().feed(&refused),
            Err(RfbError::Refused("go away".into()))
        );
        let mut vnc_auth = b"RFB 003.008\n".to_vec();
        vnc_auth.extend([1, 2]);
        assert_eq!(
            RfbClient::new().feed(&vnc_auth),
            Err(RfbError::NoSecurityNone(vec![2]))
        );
        let mut failed = b"RFB 003.008\n".to_vec();
        failed.extend([1, SECURITY_NONE]);
        failed.extend(1u32.to_be_bytes());
        failed.extend(3u32.to_be_bytes());
        failed.extend(b"bad");
        assert_eq!(
            RfbClient::new().feed(&failed),
            Err(RfbError::Refused("bad".into()))
        );
        for greeting in [b"RFB 003.003\n", b"HTTP/1.1 200", b"RFB 03.0008\n"] {
            assert!(matches!(
                RfbClient::new().feed(greeting),
                Err(RfbError::Version(_))
            ));
        }
        // A newer server is answered in 3.8.
        let mut c = RfbClient::new();
        c.feed(b"RFB 003.889\n").unwrap();
        assert_eq!(c.take_output(), VERSION);
    }
}
