//! The real browser: headless Debian Chromium opens the viewer, decodes the
//! stream with WebCodecs, and its keyboard and mouse reach the desktop.

mod harness;

use std::time::{Duration, Instant};

use harness::{require, type_a_and_click, watch_in_chromium, Zerocast};

#[tokio::test(flavor = "multi_thread")]
async fn chromium_decodes_the_stream_and_sends_input_back() {
    require("chromium");
    let demo = Zerocast::demo(&["--width", "1280", "--height", "720", "--fps", "30"]);
    // With the page reading each picture's frame stamp, as benchmarks do.
    let (mut c, stats) = watch_in_chromium(&format!("{}&stamps=on", demo.url), 100).await;
    eprintln!("page stats: {stats}");
    let stamps: Vec<u64> = stats["stamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_u64().unwrap())
        .collect();
    assert!(
        stamps.len() >= 50,
        "stamps read off the pictures: {stamps:?}"
    );
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "each picture's stamp follows the last: {stamps:?}"
    );
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

/// The page's canvas, grey, averaged over blocks of 20x20 pixels.
const BLOCKS: &str = "(() => { const c = document.getElementById('screen');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const out = [];
  for (let by = 0; by + 20 <= c.height; by += 20) for (let bx = 0; bx + 20 <= c.width; bx += 20) {
    let sum = 0;
    for (let y = by; y < by + 20; y++) for (let x = bx; x < bx + 20; x++) {
      const i = (y * c.width + x) * 4; sum += d[i] + d[i + 1] + d[i + 2]; }
    out.push(sum / 1200); }
  return out; })()";

async fn blocks(c: &mut zerocast_chromium::Chromium) -> Vec<f64> {
    let v = c.eval(BLOCKS).await.expect("read the canvas");
    v.as_array()
        .expect("an array")
        .iter()
        .map(|b| b.as_f64().expect("a number"))
        .collect()
}

async fn decoded(c: &mut zerocast_chromium::Chromium) -> serde_json::Value {
    c.eval("JSON.parse(JSON.stringify(window.zerocastStats))")
        .await
        .expect("read the stats")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_in_stripes_shows_what_a_page_of_whole_pictures_shows() {
    require("chromium");
    // Typing: a character a frame, then still. One page gets stripes (the
    // default), the other the whole pictures helix's clients get.
    let demo = Zerocast::demo(&[
        "--width",
        "1280",
        "--height",
        "720",
        "--fps",
        "30",
        "--workload",
        "typing",
        "--workload-frames",
        "120",
    ]);
    let (mut striped, _) = watch_in_chromium(&demo.url, 1).await;
    let (mut whole, _) = watch_in_chromium(&format!("{}&stripes=off", demo.url), 1).await;
    // The typing lasts 4 s; then both pages get the refined still picture.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while demo.stats()["scanouts"][0]["refinements"]
        .as_u64()
        .unwrap_or(0)
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no refinement: {}",
            demo.stats()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (s, w) = (decoded(&mut striped).await, decoded(&mut whole).await);
    eprintln!(
        "striped page: {}\nwhole page: {}",
        s["stripes"], w["stripes"]
    );
    assert_eq!(
        (s["errors"].as_u64(), w["errors"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        w["stripes"]["frames"], 0,
        "?stripes=off gets whole pictures"
    );
    let delta_frames = s["stripes"]["deltaFrames"].as_u64().unwrap();
    let delta_rows = s["stripes"]["deltaRows"].as_u64().unwrap();
    assert!(
        delta_frames >= 20,
        "the typing came as striped frames: {}",
        s["stripes"]
    );
    // A 16-row character touches one or two 64-row stripes.
    assert!(
        delta_rows <= delta_frames * 128,
        "only the stripes typed in: {}",
        s["stripes"]
    );
    let (a, b) = (blocks(&mut striped).await, blocks(&mut whole).await);
    assert_eq!(a.len(), b.len());
    let diffs: Vec<f64> = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).collect();
    let worst = diffs.iter().copied().fold(0.0, f64::max);
    let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
    eprintln!("canvas blocks differ by {mean:.2} on average, {worst:.2} at most");
    assert!(
        mean < 1.0 && worst < 10.0,
        "the two pages show different pictures: mean {mean:.2}, worst block {worst:.2}"
    );
}
