//! One viewer's input flood does not crowd out another's: each viewer has
//! an input budget, and what is over it is dropped and counted in
//! `/api/stats`, over real sockets against `zerocast demo`.

mod harness;

use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use harness::Zerocast;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Sender = SplitSink<WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>, Message>;

/// A `control` viewer past its init; its video is read and thrown away
/// in the background, so the gateway never gives up on it as stuck.
async fn viewer(demo: &Zerocast) -> Sender {
    let (ws, _) = tokio_tungstenite::connect_async(demo.ws_url("scanout=0"))
        .await
        .expect("connect");
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::text(r#"{"type":"init"}"#)).await.unwrap();
    tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    tx
}

/// helix's keyboard message: evdev `code`, pressed or let go.
fn key(code: u16, down: bool) -> Message {
    let [hi, lo] = code.to_be_bytes();
    Message::binary(vec![0x10, 0, u8::from(down), 0, hi, lo])
}

/// `/api/stats` once the gateway has read `events` input messages.
async fn stats_after(demo: &Zerocast, events: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = demo.stats();
        if stats["input_events"].as_u64() == Some(events) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway read {} of {events} input messages",
            stats["input_events"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flooding_viewer_cannot_crowd_out_another() {
    const FLOOD: u64 = 5000;
    const TYPED: u64 = 20;
    let demo = Zerocast::demo(&["--width", "320", "--height", "240", "--fps", "10"]);
    let mut flood = viewer(&demo).await;
    let mut typist = viewer(&demo).await;

    // A presses KEY_A as fast as its socket takes it while B types KEY_B
    // (pressed and let go) twenty times.
    let flooding = tokio::spawn(async move {
        for _ in 0..FLOOD {
            flood.feed(key(30, true)).await.unwrap();
        }
        flood.flush().await.unwrap();
        flood
    });
    for _ in 0..TYPED {
        typist.send(key(48, true)).await.unwrap();
        typist.send(key(48, false)).await.unwrap();
    }
    let _flood = flooding.await.unwrap();

    let stats = stats_after(&demo, FLOOD + 2 * TYPED).await;
    let viewers = stats["input_viewers"].as_array().expect("input_viewers");
    let by_received = |n: u64| {
        viewers
            .iter()
            .find(|v| v["received"].as_u64() == Some(n))
            .unwrap_or_else(|| panic!("no viewer sent {n} events: {viewers:?}"))
    };
    let (a, b) = (by_received(FLOOD), by_received(2 * TYPED));
    let count = |v: &Value, what: &str| v[what].as_u64().expect(what);
    eprintln!("flooding viewer: {a}; typing viewer: {b}");
    // Every one of B's presses and releases was handed to the desktop.
    assert_eq!(count(b, "sent"), 2 * TYPED, "{b}");
    assert_eq!(count(b, "dropped"), 0, "{b}");
    // A was cut to its budget; the rest is counted as dropped.
    assert!(count(a, "dropped") > 0, "{a}");
    assert_eq!(count(a, "sent") + count(a, "dropped"), FLOOD, "{a}");
    assert_eq!(stats["input_dropped"].as_u64(), Some(count(a, "dropped")));
}
