//! HXFR over a blocking byte stream. A reader thread turns the host's bytes
//! into packets (with the client's size limits) and hands them over a
//! channel, so the main loop can wait for an answer and for its next poll
//! of the screen at once (`recv_timeout`). Writes happen on the caller's
//! thread: requests are small.

use std::io::{ErrorKind, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use zerocast_hxfr::{encode, Decoder, Limits, Message, Packet};

use crate::transport::{Reader, Writer};

/// The session id the agent's requests carry.
const SESSION: u16 = 0;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

pub struct Link {
    rx: Receiver<Result<Packet>>,
    writer: Writer,
    out: BytesMut,
}

impl Link {
    pub fn new(reader: Reader, writer: Writer) -> Result<Link> {
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name("hxfr-reader".into())
            .spawn(move || read_loop(reader, &tx))
            .context("starting the reader thread")?;
        Ok(Link {
            rx,
            writer,
            out: BytesMut::new(),
        })
    }

    pub fn send(&mut self, message: Message) -> Result<()> {
        self.send_on(SESSION, message)
    }

    /// Sends bytes as they are (for the hostile checks).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer.write_all(bytes).context("sending to the host")
    }

    /// Sends on another session (a published stream's id).
    pub fn send_on(&mut self, session: u16, message: Message) -> Result<()> {
        self.out.clear();
        encode(&Packet::new(session, message), &mut self.out);
        self.writer
            .write_all(&self.out)
            .context("sending to the host")
    }

    /// The next packet, waiting at most `timeout`; `None` if none came.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Packet>> {
        match self.rx.recv_timeout(timeout) {
            Ok(packet) => packet.map(Some),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => bail!("the reader thread stopped"),
        }
    }

    /// A packet that has already arrived, if any.
    pub fn try_recv(&self) -> Result<Option<Packet>> {
        match self.rx.try_recv() {
            Ok(packet) => packet.map(Some),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => bail!("the reader thread stopped"),
        }
    }
}

/// Reads until the host closes or sends something unreadable; the last
/// item sent is the reason it stopped.
fn read_loop(mut reader: Reader, tx: &Sender<Result<Packet>>) {
    let decoder = Decoder::new(Limits::CLIENT);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => {
                    if tx.send(Ok(packet)).is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_fatal() => {
                    let _ = tx.send(Err(anyhow!("unreadable data from the host: {e}")));
                    return;
                }
                Err(e) => eprintln!("zerocast-guest: skipped a bad message from the host: {e}"),
            }
        }
        match reader.read(&mut chunk) {
            Ok(0) => {
                let _ = tx.send(Err(anyhow!("the host closed the connection")));
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Err(anyhow!(e).context("reading from the host")));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use zerocast_hxfr::encode_frame_response;

    /// A writer whose bytes the test keeps.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn sends_requests_and_receives_answers_until_close() {
        let mut host = BytesMut::new();
        encode_frame_response(&mut host, 0, 7, 7, true, &[0, 0, 0, 1, 0x65]);
        encode(&Packet::new(0, Message::ConfigResp), &mut host);
        let sent = Shared::default();
        let mut link =
            Link::new(Box::new(Cursor::new(host.to_vec())), Box::new(sent.clone())).unwrap();

        link.send(Message::KeyframeReq).unwrap();
        let mut expected = BytesMut::new();
        encode(&Packet::new(SESSION, Message::KeyframeReq), &mut expected);
        assert_eq!(*sent.0.lock().unwrap(), expected.to_vec());

        let wait = Duration::from_secs(5);
        match link.recv_timeout(wait).unwrap().map(|p| p.message) {
            Some(Message::FrameResponse(r)) => {
                assert_eq!((r.pts_ns, r.is_keyframe, r.nals.len()), (7, true, 1))
            }
            other => panic!("expected a frame, got {other:?}"),
        }
        assert_eq!(
            link.recv_timeout(wait).unwrap().map(|p| p.message),
            Some(Message::ConfigResp)
        );
        let err = link.recv_timeout(wait).unwrap_err().to_string();
        assert!(err.contains("closed"), "{err}");
    }

    #[test]
    fn garbage_ends_the_stream() {
        let link = Link::new(
            Box::new(Cursor::new(b"not hxfr at all".to_vec())),
            Box::new(Shared::default()),
        )
        .unwrap();
        let err = link
            .recv_timeout(Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unreadable"), "{err}");
    }
}
