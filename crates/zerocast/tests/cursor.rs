//! The guest's hardware cursor as its own channel: the test guest
//! (zerocast-flipper) sets a 64x64 cursor with a known pattern on its CRTC
//! and moves it; a raw WebSocket viewer gets the image (0x50) with that
//! pattern and hotspot, then positions (0x51) as it moves; in Chromium the
//! canvas's CSS cursor becomes the image, and a pointer moved in the page
//! moves the guest's cursor there. The synthetic desktop has no hardware
//! cursor: the page shows the normal arrow.

mod harness;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use zerocast_frame::CursorImage;
use zerocast_web::protocol::{parse_cursor, CursorMessage, CURSOR_IMAGE, CURSOR_POSITION};

use harness::{boot_test_guest, require, wait_for_text, watch_in_chromium, Zerocast};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads `ws` until `done` says so (given every cursor message so far);
/// video and other messages are skipped.
async fn read_cursor_until(
    ws: &mut Socket,
    seen: &mut Vec<CursorMessage>,
    what: &str,
    done: impl Fn(&[CursorMessage]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("{what} within 60 s; cursor messages: {seen:?}"))
            .expect("the viewer stays connected")
            .expect("a message");
        if let Message::Binary(b) = msg {
            if matches!(b.first(), Some(&CURSOR_IMAGE | &CURSOR_POSITION)) {
                seen.push(parse_cursor(&b).expect("a well-formed cursor message"));
            }
        }
    }
}

/// The flipper's pattern (`zerocast-flipper/src/cursor.rs`), as RGBA.
fn assert_flipper_pattern(image: &CursorImage) {
    assert_eq!((image.width(), image.height()), (64, 64));
    assert_eq!(image.hotspot(), (5, 9));
    let at = |x: usize, y: usize| &image.rgba()[(y * 64 + x) * 4..][..4];
    assert_eq!(at(0, 0), [0xFF, 0, 0, 0xFF], "red top-left");
    assert_eq!(at(20, 3), [0, 0xFF, 0, 0xFF], "green right of it");
    assert_eq!(at(3, 20), [0, 0, 0xFF, 0xFF], "blue below it");
    assert_eq!(at(31, 31), [0xFF; 4], "white diagonal");
    assert_eq!(at(40, 40)[3], 0, "transparent outside 32x32");
    assert_eq!(at(63, 0)[3], 0);
}

/// Visible positions among `seen`.
fn positions(seen: &[CursorMessage]) -> Vec<(i32, i32)> {
    seen.iter()
        .filter_map(|m| match m {
            CursorMessage::Position {
                visible: true,
                x,
                y,
            } => Some((*x, *y)),
            _ => None,
        })
        .collect()
}

async fn css_cursor(c: &mut zerocast_chromium::Chromium) -> String {
    c.eval("getComputedStyle(document.getElementById('screen')).cursor")
        .await
        .expect("read the canvas's cursor")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guests_cursor_reaches_viewers_beside_the_video_and_the_page_draws_it() {
    require("chromium");
    let vm = boot_test_guest(
        "zerocast.fps=30 drm_kms_helper.fbdev_emulation=0",
        &["--fps", "30"],
    );
    let serial = vm
        .serial
        .clone()
        .expect("zerocast vm prints its serial log");
    wait_for_text(
        &serial,
        "zerocast-flipper: cursor 64x64 hotspot 5,9",
        Duration::from_secs(120),
    );

    // A raw viewer: the current image at once, then the cursor wandering.
    let (mut ws, _) = tokio_tungstenite::connect_async(vm.ws_url("scanout=0"))
        .await
        .expect("a raw viewer connects");
    ws.send(Message::text(r#"{"type":"init"}"#)).await.unwrap();
    let mut seen = Vec::new();
    read_cursor_until(&mut ws, &mut seen, "the image and 3 moves", |s| {
        let mut distinct = positions(s);
        distinct.dedup();
        distinct.len() >= 3
    })
    .await;
    let CursorMessage::Image(image) = &seen[0] else {
        panic!("the image comes first: {seen:?}");
    };
    assert_flipper_pattern(image);
    assert!(
        matches!(seen[1], CursorMessage::Position { visible: true, .. }),
        "{seen:?}"
    );
    for (x, y) in positions(&seen) {
        assert!((0..1280).contains(&x) && (0..800).contains(&y), "{x},{y}");
    }
    eprintln!("cursor messages to a raw viewer: {:?}", &seen[1..]);

    // Chromium: the canvas's CSS cursor is the guest's image.
    let (mut c, _) = watch_in_chromium(&vm.url, 10).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut css = css_cursor(&mut c).await;
    while !css.starts_with("url(") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        css = css_cursor(&mut c).await;
    }
    assert!(
        css.starts_with("url(\"data:image/png;base64,"),
        "the CSS cursor: {css}"
    );
    let cursor = c
        .eval("JSON.parse(JSON.stringify(window.zerocastStats.cursor))")
        .await
        .unwrap();
    assert_eq!(cursor["images"], 1, "{cursor}");
    assert_eq!(cursor["visible"], true, "{cursor}");
    assert_eq!((&cursor["hotX"], &cursor["hotY"]), (&5.into(), &9.into()));

    // The page's pointer, at the picture's centre: the guest's cursor
    // follows it there, and every viewer hears of it.
    let centre = c
        .eval(
            "(() => { const r = document.getElementById('screen').getBoundingClientRect(); \
             return [r.left + r.width / 2, r.top + r.height / 2]; })()",
        )
        .await
        .unwrap();
    c.call(
        "Input.dispatchMouseEvent",
        serde_json::json!({ "type": "mouseMoved", "x": centre[0], "y": centre[1] }),
    )
    .await
    .expect("move the mouse");
    let near_centre = |s: &[CursorMessage]| {
        positions(s)
            .last()
            .is_some_and(|&(x, y)| (x - 640).abs() <= 4 && (y - 400).abs() <= 4)
    };
    read_cursor_until(
        &mut ws,
        &mut seen,
        "the cursor at the page's pointer",
        near_centre,
    )
    .await;
    drop(ws);
    drop(c);
    drop(vm);

    // No hardware cursor (the synthetic desktop draws its own pointer):
    // the normal arrow, never an invisible one.
    let demo = Zerocast::demo(&["--width", "320", "--height", "240", "--fps", "10"]);
    let (mut c, _) = watch_in_chromium(&demo.url, 5).await;
    assert_eq!(css_cursor(&mut c).await, "default");
    let cursor = c
        .eval("JSON.parse(JSON.stringify(window.zerocastStats.cursor))")
        .await
        .unwrap();
    assert_eq!(
        (&cursor["images"], &cursor["moves"]),
        (&0.into(), &0.into())
    );
}
