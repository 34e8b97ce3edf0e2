//! Who may watch and type, tried as an attacker would: no token, a wrong
//! token, another site's page, a DNS-rebinding Host, and the view-only
//! link trying to type. Real sockets, real Chromium.

mod harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use harness::{type_a_and_click, watch_in_chromium, Zerocast};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const SMALL: &[&str] = &["--width", "320", "--height", "240", "--fps", "30"];

/// A WebSocket upgrade as a browser would send it; returns the status line
/// and everything the server sent.
fn upgrade(addr: &str, path: &str, host: &str, origin: Option<&str>) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect to the gateway");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{origin}Connection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    // Read what comes within the timeout: a refused request gets its answer
    // and nothing more; an accepted one would go on to video.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let status = String::from_utf8_lossy(&got)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, got)
}

#[test]
fn without_the_right_token_host_and_origin_nothing_is_served() {
    let z = Zerocast::demo(SMALL);
    let (addr, token) = (z.web_addr().to_owned(), z.token().to_owned());
    let ws = |q: &str| format!("/ws?scanout=0{q}");
    let own = format!("http://{addr}");
    let good = format!("&token={token}");
    let cases: [(&str, String, &str, Option<&str>, u16); 8] = [
        ("no token", ws(""), &addr, None, 401),
        (
            "wrong token",
            ws("&token=0123456789abcdef0123456789abcdef"),
            &addr,
            None,
            403,
        ),
        (
            "another site's page, no token",
            ws(""),
            &addr,
            Some("https://evil.example"),
            403,
        ),
        (
            "another site's page with the token",
            ws(&good),
            &addr,
            Some("https://evil.example"),
            403,
        ),
        ("DNS rebinding", ws(&good), "evil.example:80", None, 403),
        ("stats without token", "/api/stats".into(), &addr, None, 401),
        ("page without token", "/".into(), &addr, None, 401),
        ("the printed URL", ws(&good), &addr, Some(&own), 101),
    ];
    for (what, path, host, origin, want) in cases {
        let (status, got) = upgrade(&addr, &path, host, origin);
        assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&got));
        // Anything but 101 means no WebSocket: not one video byte.
        if want != 101 {
            let text = String::from_utf8_lossy(&got);
            assert!(!text.contains(&token), "{what}: the answer names no secret");
        }
    }
    // The stats endpoint with the token works.
    assert!(z.stats()["scanouts"].is_array());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_view_only_link_watches_but_cannot_type() {
    let z = Zerocast::demo(SMALL);
    let view_token = z.view_url.split("token=").nth(1).unwrap().to_owned();
    let url = format!("ws://{}/ws?scanout=0&token={view_token}", z.web_addr());
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Origin",
        HeaderValue::from_str(&format!("http://{}", z.web_addr())).unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::text(r#"{"type":"init"}"#)).await.unwrap();
    // Video arrives: watching is allowed.
    let got_video = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(m)) = ws.next().await {
            if matches!(&m, Message::Binary(b) if b.first() == Some(&0x01)) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(got_video, Ok(true), "the view-only link gets video");
    // A key press: refused with a reason, and nothing reached the desktop.
    ws.send(Message::binary(vec![0x10, 0, 1, 0, 0, 30]))
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(Some(f)) = m {
                return f.reason.to_string();
            }
        }
        String::new()
    })
    .await
    .expect("a close frame");
    assert!(reason.contains("view-only"), "{reason}");
    assert_eq!(z.stats()["input_events"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn in_chromium_the_view_link_plays_and_its_keys_go_nowhere() {
    let z = Zerocast::demo(SMALL);
    let (mut c, _) = watch_in_chromium(&z.view_url, 30).await;
    type_a_and_click(&mut c, 100, 100).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(z.stats()["input_events"], 0, "a view-only page cannot type");
}
