//! The gateway's WebSocket edge with clients that misbehave: malformed
//! input gets a close frame with a reason, and a viewer that stops reading
//! does not hold back one that reads.

mod harness;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use harness::{Zerocast, HEAVY_STREAM};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

async fn viewer(
    demo: &Zerocast,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = demo.ws_url("scanout=0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws.send(Message::text(r#"{"type":"init"}"#)).await.unwrap();
    ws
}

/// The close frame's code and reason, skipping video before it.
async fn close_reason(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> (CloseCode, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => return (f.code, f.reason.to_string()),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    panic!("no close frame within 20 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_input_closes_with_a_reason() {
    let demo = Zerocast::demo(&["--width", "640", "--height", "360", "--fps", "30"]);
    for (bytes, reason) in [
        (vec![0x99u8], "unknown message type 0x99"),
        (vec![0x10, 0, 1], "needs 6 bytes"),
        (
            vec![0x10, 0, 1, 0, 0xFF, 0xFF],
            "key code outside evdev's range",
        ),
        (
            vec![0x12, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            "reference size must be positive",
        ),
    ] {
        let mut ws = viewer(&demo).await;
        ws.send(Message::binary(bytes)).await.unwrap();
        let (code, why) = close_reason(&mut ws).await;
        assert_eq!(code, CloseCode::Unsupported);
        assert!(why.contains(reason), "close reason {why:?} says {reason:?}");
    }
    let mut ws = viewer(&demo).await;
    ws.send(Message::text("not json")).await.unwrap();
    let (_, why) = close_reason(&mut ws).await;
    assert!(why.contains("bad text message"), "{why}");
    // A message far over the 4 KiB limit ends the connection too.
    let mut ws = viewer(&demo).await;
    let _ = ws.send(Message::binary(vec![0x40u8; 1 << 20])).await;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the oversized message ended the connection");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_that_stops_reading_does_not_hold_back_another() {
    // All-keyframe 1080p: megabytes a second, far past what socket buffers
    // hold, so the viewer that stops reading blocks its sender for good.
    let demo = Zerocast::demo(HEAVY_STREAM);
    let _stalled = viewer(&demo).await; // never read again
    let mut reader = viewer(&demo).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut frames, mut first_key) = (0u32, None);
    // Reads on until the gateway has given up on the stalled viewer (its
    // sends time out), and at least 150 frames arrived meanwhile.
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), reader.next())
            .await
            .expect("frames keep coming while the other viewer is stuck")
            .expect("open")
            .expect("readable");
        if let Message::Binary(b) = msg {
            if b.first() == Some(&0x01) {
                first_key.get_or_insert(b[2] & 1 == 1);
                frames += 1;
            }
        }
        if frames >= 150 && frames % 30 == 0 {
            let stats = demo.stats();
            if stats["scanouts"][0]["subscribers"] == 1 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the stuck viewer was never let go"
        );
    }
    assert_eq!(first_key, Some(true), "a viewer starts at a keyframe");
    eprintln!("{frames} frames while the other viewer was stuck and then dropped");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_that_never_sends_init_is_closed_within_seconds() {
    let demo = Zerocast::demo(&["--width", "320", "--height", "240", "--fps", "30"]);
    let (mut ws, _) = tokio_tungstenite::connect_async(demo.ws_url("scanout=0"))
        .await
        .expect("connect");
    let (code, why) = close_reason(&mut ws).await;
    assert_eq!(code, CloseCode::Policy);
    assert!(why.contains("no init"), "{why}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_decoder_resets_on_a_still_screen_costs_a_few_keyframes() {
    let demo = Zerocast::demo(&["--width", "320", "--height", "240", "--static"]);
    let mut ws = viewer(&demo).await;
    let frames = || demo.stats()["scanouts"][0]["frames"].as_u64().unwrap();
    // The viewer's first keyframe, then quiet.
    let deadline = Instant::now() + Duration::from_secs(20);
    while frames() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = frames();
    // 300 re-inits over about 1.5 s: each asks for a keyframe.
    for _ in 0..300 {
        ws.send(Message::text(r#"{"type":"init"}"#)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let encoded = frames() - before;
    assert!(
        (1..=8).contains(&encoded),
        "300 decoder resets on a still screen made {encoded} encodes"
    );
}
