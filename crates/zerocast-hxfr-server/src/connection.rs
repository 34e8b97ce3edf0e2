//! One HXFR peer's I/O: the read loop decodes packets and hands them to
//! the sans-IO [`Peer`], then carries out what it asks (replies to the
//! writer, encodes off the async threads); a writer task sends replies and,
//! once subscribed, the stream's frames (and its cursor, when asked). A peer that stops reading only
//! stalls its own writer: the pipeline keeps going and the subscription
//! skips ahead to the next keyframe.

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};
use zerocast_frame::{Cursor, CursorFeed, CursorUpdate};
use zerocast_hxfr::{
    encode, frame_response_prefix, CursorImage, CursorPosition, Decoder, ErrorCode, ErrorMsg,
    Limits, Message, Packet, FRAME_RESPONSE_PREFIX_LEN,
};
use zerocast_pipeline::{EncodedFrame, Registry, Subscription};

use crate::budget::EncoderMemory;
use crate::peer::{ListenerRole, Output, Peer};

/// A write that makes no progress for this long ends the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer must send its first message within this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer that watches nothing and sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What the writer task sends.
enum Outgoing {
    /// An encoded control message.
    Bytes(Bytes),
    /// A FRAME_RESPONSE: its prefix, then the shared access unit.
    Frame {
        prefix: [u8; FRAME_RESPONSE_PREFIX_LEN],
        access_unit: Bytes,
    },
    /// From now on, also this stream's frames (and its cursor, if given),
    /// under this session id.
    Subscribe(u16, Subscription, Option<watch::Receiver<Cursor>>),
}

/// What request/response encoding may take, process-wide.
#[derive(Debug, Clone)]
pub struct EncodeBudget {
    /// Encodes running at once: CPU work peers can ask for.
    pub at_once: Arc<Semaphore>,
    /// Memory the sessions' encoders may hold.
    pub memory: Arc<EncoderMemory>,
}

/// The writer is gone: stop reading too.
struct Closed;

/// Serves one peer until it disconnects or breaks the protocol.
///
/// `budget` bounds the request/response encoders across every connection;
/// `role` is what the peer may do.
pub async fn serve<S>(
    stream: S,
    registry: Arc<Registry>,
    budget: EncodeBudget,
    role: ListenerRole,
    name: String,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(16);
    let writer = tokio::spawn(write_loop(wr, rx, name.clone()));
    let mut peer = Peer::new(registry, role, budget.memory.clone());
    let encodes = budget.at_once;
    let decoder = Decoder::new(Limits::HOST);
    let mut buf = BytesMut::with_capacity(4096);
    let (mut heard, mut bad) = (false, 0u64);
    'read: loop {
        loop {
            let fatal = match decoder.decode(&mut buf) {
                Ok(Some(packet)) => {
                    heard = true;
                    peer.handle(std::time::Instant::now(), packet);
                    false
                }
                Ok(None) => break,
                Err(e) => {
                    // The first says what is wrong; the rest are counted.
                    bad += 1;
                    if bad == 1 {
                        tracing::warn!(peer = %name, "bad HXFR input: {e}");
                    }
                    peer.bad_input(&e)
                }
            };
            if carry_out(&mut peer, &tx, &encodes).await.is_err() || fatal {
                break 'read;
            }
            if peer.struck_out() {
                tracing::info!(peer = %name, "closing: one malformed or forbidden message after another");
                break 'read;
            }
        }
        // A peer that watches a stream may stay silent; any other must talk.
        let patience = match (heard, peer.is_subscribed()) {
            (false, _) => Some(HANDSHAKE_TIMEOUT),
            (true, false) => Some(IDLE_TIMEOUT),
            (true, true) => None,
        };
        let read = rd.read_buf(&mut buf);
        let read = match patience {
            Some(t) => match tokio::time::timeout(t, read).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!(peer = %name, "closing: nothing received for {t:?}");
                    break;
                }
            },
            None => read.await,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(tx);
    let _ = writer.await;
    if bad > 1 {
        tracing::warn!(peer = %name, "{bad} bad HXFR messages in all");
    }
    tracing::debug!(peer = %name, "connection closed");
}

/// Does what the peer asked, in order.
async fn carry_out(
    peer: &mut Peer,
    tx: &mpsc::Sender<Outgoing>,
    encodes: &Arc<Semaphore>,
) -> Result<(), Closed> {
    while let Some(output) = peer.poll_output() {
        let outgoing = match output {
            Output::Send(packet) => {
                let mut b = BytesMut::new();
                encode(&packet, &mut b);
                Outgoing::Bytes(b.freeze())
            }
            Output::Frame {
                session_id,
                pts_ns,
                reply,
            } => Outgoing::Frame {
                prefix: frame_response_prefix(
                    session_id,
                    pts_ns,
                    pts_ns,
                    reply.keyframe,
                    reply.access_unit.len(),
                ),
                access_unit: reply.access_unit,
            },
            Output::Subscribe {
                subscription,
                cursor,
            } => {
                let session_id = u16::try_from(subscription.stream_id()).unwrap_or(u16::MAX);
                Outgoing::Subscribe(session_id, subscription, cursor)
            }
            Output::Encode {
                session_id,
                request,
                mut session,
            } => {
                let Some(resources) = peer.registry().resources().cloned() else {
                    continue;
                };
                // Encoding is CPU work: off the async threads, one request at
                // a time per connection (a flood only fills this peer's own
                // socket), and no more at once in all than there are cores.
                let Ok(slot) = encodes.clone().acquire_owned().await else {
                    continue;
                };
                let job = tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    let result = session.encode(&request, resources.as_ref());
                    (session, request, result)
                });
                match job.await {
                    Ok((session, request, result)) => {
                        peer.encoded(session_id, &request, session, result);
                    }
                    Err(e) => peer.encode_lost(session_id, &e.to_string()),
                }
                continue;
            }
        };
        tx.send(outgoing).await.map_err(|_| Closed)?;
    }
    Ok(())
}

async fn write_loop<W: AsyncWrite>(wr: W, mut rx: mpsc::Receiver<Outgoing>, name: String) {
    tokio::pin!(wr);
    let mut sub: Option<(u16, Subscription)> = None;
    // An ended subscription, held until its ERROR is written: whoever
    // waits for subscribers to leave (zerocast vm before it exits) waits
    // for that too.
    let mut ended: Option<Subscription> = None;
    // The subscription's cursor, when asked for: its current state at once,
    // then the latest whenever this peer gets to it.
    let mut cursor: Option<watch::Receiver<Cursor>> = None;
    let mut feed = CursorFeed::default();
    loop {
        let outgoing = tokio::select! {
            biased;
            m = rx.recv() => match m {
                Some(Outgoing::Subscribe(sid, s, c)) => {
                    sub = Some((sid, s));
                    cursor = c.map(|mut c| {
                        c.mark_changed();
                        c
                    });
                    feed = CursorFeed::default();
                    continue;
                }
                Some(o) => o,
                None => break,
            },
            latest = next_cursor(&mut cursor) => {
                let (Some(latest), Some((sid, _))) = (latest, &sub) else {
                    cursor = None;
                    continue;
                };
                let mut b = BytesMut::new();
                for update in feed.update(&latest) {
                    encode(&Packet::new(*sid, cursor_message(update)), &mut b);
                }
                if b.is_empty() {
                    continue;
                }
                Outgoing::Bytes(b.freeze())
            }
            f = next_frame(&mut sub) => match f {
                Some((sid, frame)) => frame_message(sid, &frame),
                None => match sub.take() {
                    // The stream ended (the VM stopped): the peer is told
                    // why rather than left waiting.
                    Some((sid, s)) => {
                        let message = ended_message(sid, s.end_reason());
                        ended = Some(s);
                        message
                    }
                    None => continue,
                },
            },
        };
        let write = async {
            match outgoing {
                Outgoing::Bytes(mut b) => wr.write_all_buf(&mut b).await,
                Outgoing::Frame {
                    prefix,
                    access_unit,
                } => {
                    // Vectored: the shared access unit is not copied.
                    let mut both = Buf::chain(&prefix[..], access_unit);
                    wr.write_all_buf(&mut both).await
                }
                Outgoing::Subscribe(..) => Ok(()),
            }
        };
        let written = tokio::time::timeout(WRITE_TIMEOUT, write).await;
        drop(ended.take());
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(peer = %name, "write failed: {e}");
                break;
            }
            Err(_) => {
                tracing::warn!(peer = %name, "peer stopped reading for {WRITE_TIMEOUT:?}; closing");
                break;
            }
        }
    }
    let _ = wr.shutdown().await;
}

/// An ERROR on a subscription's session: its stream has ended.
fn ended_message(session_id: u16, reason: &str) -> Outgoing {
    let message = Message::Error(ErrorMsg {
        code: ErrorCode::Internal.code(),
        message: format!("scanout {session_id} ended: {reason}"),
    });
    let mut b = BytesMut::new();
    encode(&Packet::new(session_id, message), &mut b);
    Outgoing::Bytes(b.freeze())
}

/// A pushed frame as HXFR: session id = the stream id, pts = capture time.
fn frame_message(session_id: u16, frame: &EncodedFrame) -> Outgoing {
    let pts = frame.captured_unix_ns;
    Outgoing::Frame {
        prefix: frame_response_prefix(
            session_id,
            pts,
            pts,
            frame.keyframe,
            frame.access_unit.len(),
        ),
        access_unit: frame.access_unit.clone(),
    }
}

/// A cursor update as HXFR (zerocast's extension).
fn cursor_message(update: CursorUpdate) -> Message {
    match update {
        CursorUpdate::Image(image) => {
            let (hot_x, hot_y) = image.hotspot();
            // A cursor image is at most 128x128: every value fits.
            let side = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
            Message::CursorImage(CursorImage {
                hot_x: side(hot_x),
                hot_y: side(hot_y),
                width: side(image.width()),
                height: side(image.height()),
                rgba: Bytes::copy_from_slice(image.rgba()),
            })
        }
        CursorUpdate::Position { visible, x, y } => {
            Message::CursorPosition(CursorPosition { visible, x, y })
        }
    }
}

/// The cursor's latest state once it changed; `None` once its stream has
/// gone; never without a cursor.
async fn next_cursor(cursor: &mut Option<watch::Receiver<Cursor>>) -> Option<Cursor> {
    let Some(rx) = cursor else {
        return pending().await;
    };
    rx.changed().await.ok()?;
    let latest = rx.borrow_and_update().clone();
    Some(latest)
}

async fn next_frame(sub: &mut Option<(u16, Subscription)>) -> Option<(u16, Arc<EncodedFrame>)> {
    match sub {
        Some((sid, s)) => s.next().await.map(|f| (*sid, f)),
        None => pending().await,
    }
}
