//! TLS for the web viewer, with a certificate made here: Chromium plays the
//! printed `https://` URL over `wss://`, plain HTTP to that port gets
//! nothing, and plain HTTP off loopback is refused unless asked for.

mod harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use harness::{watch_in_chromium_with, Zerocast, BIN};
use rcgen::PublicKeyData;

const SMALL: &[&str] = &["--width", "320", "--height", "240", "--fps", "30"];

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM
/// files: (cert, key, Chromium's flag to trust exactly this key).
fn test_certificate(name: &str) -> (PathBuf, PathBuf, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("make a certificate");
    let (cert, key) = (
        harness::tmp(&format!("{name}-cert.pem")),
        harness::tmp(&format!("{name}-key.pem")),
    );
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let spki = made.signing_key.subject_public_key_info();
    let hash = ring::digest::digest(&ring::digest::SHA256, &spki);
    let pin = base64::engine::general_purpose::STANDARD.encode(hash.as_ref());
    (
        cert,
        key,
        format!("--ignore-certificate-errors-spki-list={pin}"),
    )
}

fn demo_with_tls(name: &str) -> (Zerocast, String) {
    let (cert, key, trust) = test_certificate(name);
    let mut args = SMALL.to_vec();
    args.extend([
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let z = Zerocast::demo(&args);
    assert!(z.url.starts_with("https://"), "viewer URL: {}", z.url);
    assert!(
        z.view_url.starts_with("https://"),
        "view URL: {}",
        z.view_url
    );
    (z, trust)
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_plays_the_https_url_over_wss() {
    let (z, trust) = demo_with_tls("play");
    // A peer that connects and never starts its handshake holds up nobody.
    let _stalled = TcpStream::connect(z.web_addr()).expect("connect to the gateway");
    let (mut c, stats) = watch_in_chromium_with(&z.url, 30, &[&trust]).await;
    let protocol = c.eval("location.protocol").await.expect("read location");
    assert_eq!(protocol, "https:", "the page came over TLS");
    eprintln!("over TLS: {stats}");
}

#[test]
fn plain_http_to_the_tls_port_gets_no_page() {
    let (z, _) = demo_with_tls("plain");
    let addr = z.web_addr();
    let mut s = TcpStream::connect(addr).expect("connect to the gateway");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The gateway may close the connection while the request is still
    // being written (no TLS ClientHello came): a broken pipe here is the
    // refusal this test wants, not a failure.
    let _ = write!(
        s,
        "GET /?token={} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        z.token()
    );
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        !text.contains("HTTP/1.1") && !text.contains("<html") && !text.contains("<script"),
        "plain HTTP got an answer: {text:?}"
    );
    // At most a TLS alert record (content type 21), never more than a few bytes.
    assert!(got.len() < 64, "{} bytes came back: {got:?}", got.len());
    eprintln!(
        "plain HTTP to the TLS port got {} bytes: {got:?}",
        got.len()
    );
}

#[test]
fn plain_http_off_loopback_is_refused_unless_insecure_is_asked_for() {
    let common = ["--hxfr", "tcp:127.0.0.1:0", "--duration", "30"];
    let refused = Command::new(BIN)
        .args(["demo", "--listen", "0.0.0.0:0"])
        .args(common)
        .args(SMALL)
        .output()
        .expect("run zerocast demo");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "started without TLS: {stderr}");
    assert!(
        stderr.contains("without TLS")
            && stderr.contains("--tls-cert")
            && stderr.contains("--insecure-no-tls"),
        "the refusal says what to do: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&refused.stdout).contains("viewer:"),
        "no viewer URL printed"
    );

    let mut insecure = Command::new(BIN)
        .args(["demo", "--listen", "0.0.0.0:0", "--insecure-no-tls"])
        .args(common)
        .args(SMALL)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start zerocast demo --insecure-no-tls");
    let stdout = insecure.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let viewer = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.starts_with("viewer: ") => break Some(line),
            Ok(_) => {}
            Err(_) => break None,
        }
    };
    let _ = insecure.kill();
    let _ = insecure.wait();
    let viewer = viewer.expect("--insecure-no-tls starts and prints its viewer URL");
    assert!(viewer.contains("http://0.0.0.0:"), "{viewer}");
}
