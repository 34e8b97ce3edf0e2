//! A blocking HXFR subscriber for tests that need each frame as it comes:
//! its arrival time, capture time and keyframe flag, and how the stream
//! ended.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use zerocast_hxfr::{encode, Decoder, Limits, Message, Packet};

/// One pushed frame.
pub struct Frame {
    /// When it was read off the socket (host clock, as `pts_ns`).
    pub arrived: SystemTime,
    /// Capture time, Unix ns.
    pub pts_ns: i64,
    pub keyframe: bool,
    /// The access unit, Annex B.
    pub data: Vec<u8>,
}

impl Frame {
    /// Capture to arrival.
    pub fn age(&self) -> Duration {
        let captured =
            SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(self.pts_ns).unwrap_or(0));
        self.arrived
            .duration_since(captured)
            .unwrap_or(Duration::ZERO)
    }
}

pub enum Event {
    Frame(Frame),
    /// An ERROR from the server, with its message.
    Error(String),
    /// The server closed the connection (or reset it).
    Closed,
    /// Nothing arrived within the read timeout.
    Idle,
}

pub struct Subscriber {
    s: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
}

impl Subscriber {
    /// Connects to `addr` (`host:port`) and subscribes to `scanout`; a read
    /// gives up after `idle` (and returns [`Event::Idle`]).
    pub fn connect(addr: &str, scanout: u32, idle: Duration) -> Subscriber {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        s.set_read_timeout(Some(idle)).unwrap();
        let mut sub = Subscriber {
            s,
            buf: BytesMut::new(),
            decoder: Decoder::new(Limits::CLIENT),
        };
        let session = u16::try_from(scanout).expect("scanout ids fit a session id");
        sub.send(
            session,
            Message::Subscribe {
                scanout_id: scanout,
            },
        );
        sub
    }

    pub fn send(&mut self, session: u16, m: Message) {
        let mut b = BytesMut::new();
        encode(&Packet::new(session, m), &mut b);
        self.s.write_all(&b).unwrap();
    }

    /// The next frame, ERROR or end; other messages are skipped.
    pub fn next(&mut self) -> Event {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(p)) => match p.message {
                    Message::FrameResponse(r) => {
                        return Event::Frame(Frame {
                            arrived: SystemTime::now(),
                            pts_ns: r.pts_ns,
                            keyframe: r.is_keyframe,
                            data: r.nals.concat(),
                        })
                    }
                    Message::Error(e) => return Event::Error(e.message),
                    _ => continue,
                },
                Ok(None) => {}
                Err(e) => panic!("the server sent a malformed packet: {e}"),
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return Event::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Event::Idle
                }
                Err(_) => return Event::Closed,
            }
        }
    }
}
