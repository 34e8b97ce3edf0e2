//! The real browser: headless Debian Chromium opens the viewer, decodes the
//! stream with WebCodecs, and its keyboard and mouse reach the desktop.

mod harness;

use std::time::{Duration, Instant};

use harness::{require, type_a_and_click, watch_in_chromium, Zerocast};

#[tokio::test(flavor = "multi_thread")]
async fn chromium_decodes_the_stream_and_sends_input_back() {
    require("chromium");
    let demo = Zerocast::demo(&["--width", "1280", "--height", "720", "--fps", "30"]);
    let (mut c, stats) = watch_in_chromium(&demo.url, 100).await;
    eprintln!("page stats: {stats}");
    let shot = harness::tmp("viewer.png");
    c.screenshot(&shot).await.expect("screenshot");
    eprintln!("screenshot: {}", shot.display());
    assert!(stats["keyframes"].as_u64().unwrap() >= 1);
    assert_eq!(
        (stats["width"].as_u64(), stats["height"].as_u64()),
        (Some(1280), Some(720))
    );
    assert!(
        stats["codec"].as_str().unwrap().starts_with("avc1.42"),
        "constrained baseline H.264"
    );
    let latencies = stats["latencies"].as_array().unwrap();
    assert!(
        !latencies.is_empty()
            && latencies
                .iter()
                .all(|l| l.as_f64().is_some_and(f64::is_finite))
    );

    // Keyboard and mouse through DevTools, as a user's would arrive.
    let before = demo.stats()["input_events"].as_u64().unwrap();
    type_a_and_click(&mut c, 200, 150).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = before;
    while after < before + 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = demo.stats()["input_events"].as_u64().unwrap();
    }
    // key down, key up, move, and a move + button for press and release.
    assert!(
        after >= before + 5,
        "input events reached the host: {before} -> {after}"
    );
    let viewers = demo.stats()["viewers"].clone();
    assert!(
        viewers[0]["decoded"].as_u64().unwrap_or(0) > 0,
        "the page reports to /api/stats: {viewers}"
    );
}
