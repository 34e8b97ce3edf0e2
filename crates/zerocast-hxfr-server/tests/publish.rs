//! Published streams over real sockets: a publisher (as a guest agent would)
//! hands in access units, a subscriber gets them, and the publisher is told
//! when a keyframe is wanted.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zerocast_encode::{EncoderKind, EncoderSettings};
use zerocast_hxfr::{
    encode, ConfigReq, Decoder, ErrorCode, FrameResponse, Limits, Message, Packet,
};
use zerocast_hxfr_server::{Endpoint, ListenerRole, Server, ServerLimits};
use zerocast_pipeline::{PublishedStream, Registry, Stream};

const STREAM: u16 = 16;

struct Peer {
    s: TcpStream,
    buf: BytesMut,
}

impl Peer {
    async fn connect(addr: &Endpoint) -> Peer {
        let Endpoint::Tcp(a) = addr else {
            unreachable!()
        };
        Peer {
            s: TcpStream::connect(a).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, session: u16, m: Message) {
        let mut b = BytesMut::new();
        encode(&Packet::new(session, m), &mut b);
        self.s.write_all(&b).await.unwrap();
    }

    async fn recv(&mut self) -> Packet {
        let d = Decoder::new(Limits::CLIENT);
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(p) = d.decode(&mut self.buf).unwrap() {
                    return p;
                }
                assert_ne!(
                    self.s.read_buf(&mut self.buf).await.unwrap(),
                    0,
                    "connection closed"
                );
            }
        })
        .await
        .expect("a message within 10 s")
    }
}

fn frame(keyframe: bool, n: u8) -> Message {
    Message::FrameResponse(FrameResponse {
        pts_ns: i64::from(n),
        dts_ns: i64::from(n),
        is_keyframe: keyframe,
        nals: vec![Bytes::from(vec![
            0,
            0,
            0,
            1,
            if keyframe { 0x65 } else { 0x41 },
            n,
        ])],
    })
}

#[tokio::test]
async fn a_published_stream_reaches_subscribers_and_asks_for_keyframes() {
    let registry = Arc::new(Registry::new(
        EncoderKind::OpenH264,
        EncoderSettings::default(),
    ));
    registry.add(Stream::Published(PublishedStream::new(
        STREAM.into(),
        "guest agent",
    )));
    let server = Server::new(registry, ServerLimits::default());
    let any_port = "tcp:127.0.0.1:0".parse().unwrap();
    let (guest, _task) = server.listen(&any_port, ListenerRole::Guest).await.unwrap();
    let (watchers, _task) = server
        .listen(&any_port, ListenerRole::Subscriber)
        .await
        .unwrap();

    let mut publisher = Peer::connect(&guest).await;
    // Frames before the size is known are refused.
    publisher.send(STREAM, frame(true, 0)).await;
    match publisher.recv().await.message {
        Message::Error(e) => assert_eq!(ErrorCode::from_code(e.code), ErrorCode::NotConfigured),
        m => panic!("expected NOT_CONFIGURED, got {m:?}"),
    }
    let config = ConfigReq {
        width: 640,
        height: 480,
        ..ConfigReq::default()
    };
    publisher.send(STREAM, Message::ConfigReq(config)).await;
    assert_eq!(publisher.recv().await.message, Message::ConfigResp);

    let mut viewer = Peer::connect(&watchers).await;
    viewer
        .send(
            STREAM,
            Message::Subscribe {
                scanout_id: STREAM.into(),
            },
        )
        .await;
    assert!(matches!(viewer.recv().await.message, Message::SubscribeResp(r) if r.success));

    // A delta frame while the new viewer waits: the publisher is asked for a keyframe.
    publisher.send(STREAM, frame(false, 1)).await;
    assert_eq!(publisher.recv().await.message, Message::KeyframeReq);
    publisher.send(STREAM, frame(true, 2)).await;
    publisher.send(STREAM, frame(false, 3)).await;
    for n in [2u8, 3] {
        match viewer.recv().await.message {
            Message::FrameResponse(r) => {
                assert_eq!(r.nals.concat()[5], n, "frame {n} arrives intact, in order");
                assert_eq!(r.is_keyframe, n == 2);
            }
            m => panic!("expected a frame, got {m:?}"),
        }
    }

    // Not a published stream: publishing there is refused.
    publisher.send(3, frame(true, 4)).await;
    assert!(matches!(publisher.recv().await.message, Message::Error(e) if e.code == -1));
}
