//! Sharp when still: once motion stops, one refinement brings the picture
//! close to its source (checked against the source with ffmpeg's decoder),
//! a still screen is not refined again, and Chromium decodes it all.

mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{require, tmp, watch_in_chromium, Zerocast};
use zerocast_encode::{EncoderKind, EncoderSettings};
use zerocast_frame::{Damage, Doorbell, Frame, FrameSource, SourceEvent, I420};
use zerocast_pipeline::{EncodedFrame, PipelineConfig, Registry, ScanoutPipeline, Stream};
use zerocast_synthetic::{Workload, WorkloadScene};
use zerocast_web::{AccessConfig, Gateway, Token};

const WIDTH: u32 = 960;
const HEIGHT: u32 = 540;
/// Frames of a window drag before it stops.
const MOTION: u32 = 30;

/// A window dragged for [`MOTION`] frames at 60 fps once `go` is set, then
/// left still. Its first picture is there from the start.
struct Drag {
    scene: WorkloadScene,
    shown: bool,
    go: Arc<Gate>,
    left: u32,
    next: Instant,
}

/// Starts a [`Drag`] from the test.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    bell: Mutex<Option<Doorbell>>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        if let Some(bell) = &*self.bell.lock().unwrap() {
            bell.ring();
        }
    }
}

impl FrameSource for Drag {
    fn attach(&mut self, bell: Doorbell) {
        *self.go.bell.lock().unwrap() = Some(bell);
    }

    fn poll(&mut self, now: Instant) -> SourceEvent {
        if !self.shown {
            self.shown = true;
            return SourceEvent::Changed {
                captured_at: now,
                damage: Damage::full(),
            };
        }
        if self.left == 0 || !self.go.open.load(Ordering::SeqCst) {
            return SourceEvent::Idle { wake_at: None };
        }
        if now < self.next {
            return SourceEvent::Idle {
                wake_at: Some(self.next),
            };
        }
        self.left -= 1;
        self.next = now + Duration::from_micros(16_667);
        SourceEvent::Changed {
            captured_at: now,
            damage: self.scene.advance(),
        }
    }

    fn frame(&self) -> Option<Frame<'_>> {
        Some(self.scene.frame())
    }

    fn describe(&self) -> String {
        "a dragged window".into()
    }
}

/// The picture the drag stops on, as luma.
fn final_luma() -> Vec<u8> {
    let mut scene = WorkloadScene::new(Workload::Drag, WIDTH, HEIGHT);
    for _ in 0..MOTION {
        scene.advance();
    }
    let mut i420 = I420::default();
    i420.convert(&scene.frame()).unwrap();
    i420.y().to_vec()
}

/// A pipeline over a drag that starts when the gate opens.
fn drag_stream(encoder: EncoderKind, refresh_after: Option<Duration>) -> (Stream, Arc<Gate>) {
    let go = Arc::new(Gate::default());
    let source = Drag {
        scene: WorkloadScene::new(Workload::Drag, WIDTH, HEIGHT),
        shown: false,
        go: go.clone(),
        left: MOTION,
        next: Instant::now(),
    };
    let config = PipelineConfig {
        scanout_id: 0,
        encoder,
        settings: EncoderSettings::default(),
        refresh_after,
        stripe_height: None,
    };
    let pipeline = ScanoutPipeline::start(Box::new(source), config).unwrap();
    (Stream::Encoded(pipeline), go)
}

/// Runs the drag through a real pipeline with one subscriber that joined
/// before it; returns every frame it got until a second passed without
/// one (its first, the keyframe of the picture before the drag, left
/// out), and the refinements.
async fn drag(
    encoder: EncoderKind,
    refresh_after: Option<Duration>,
) -> (Vec<Arc<EncodedFrame>>, u64) {
    let (stream, go) = drag_stream(encoder, refresh_after);
    let mut sub = stream.subscribe();
    let first = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a keyframe for the subscriber")
        .expect("the pipeline runs");
    assert!(first.keyframe);
    go.open();
    let mut frames = vec![first];
    // Bounded: the drag lasts half a second; 40 frames at most are expected.
    for _ in 0..100 {
        match tokio::time::timeout(Duration::from_secs(1), sub.next()).await {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => panic!("the pipeline stopped"),
            Err(_) => break,
        }
    }
    (frames, stream.stats().refinements)
}

/// Frames after the first keyframe: the drag's, and what follows it.
fn after_keyframe(frames: &[Arc<EncodedFrame>]) -> usize {
    frames.len() - 1
}

/// Decodes an Annex B stream with ffmpeg: each picture's luma, in order.
fn decode(frames: &[Arc<EncodedFrame>], name: &str) -> Vec<Vec<u8>> {
    require("ffmpeg");
    let path = tmp(name);
    let bytes: Vec<u8> = frames.iter().flat_map(|f| f.access_unit.to_vec()).collect();
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "h264", "-i"])
        .arg(&path)
        // The decoder's own planes (gray would be range-converted).
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let luma = (WIDTH * HEIGHT) as usize;
    let size = luma * 3 / 2;
    assert_eq!(out.stdout.len() % size, 0, "whole pictures");
    out.stdout
        .chunks_exact(size)
        .map(|picture| picture[..luma].to_vec())
        .collect()
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)).powi(2))
        .sum();
    let mse = se / a.len() as f64;
    if mse == 0.0 {
        99.0
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_picture_left_after_motion_is_refined_once_to_near_lossless() {
    let source = final_luma();
    for encoder in EncoderKind::ALL {
        let (frames, refinements) = drag(encoder, Some(Duration::from_millis(150))).await;
        assert_eq!(
            after_keyframe(&frames),
            MOTION as usize + 1,
            "{encoder}: every moving picture, then one refinement, then nothing"
        );
        assert_eq!(refinements, 1);
        let refined = frames.last().unwrap();
        assert!(!refined.keyframe, "{encoder}: a refinement is a P-frame");
        let stop = frames[MOTION as usize].captured_at;
        let sharp_at = refined.captured_at.duration_since(stop);
        assert!(
            sharp_at >= Duration::from_millis(150),
            "{encoder}: not before the screen was still for the delay ({sharp_at:?})"
        );
        let pictures = decode(&frames, &format!("refresh-on-{encoder}.h264"));
        assert_eq!(pictures.len(), frames.len());
        let (moving, sharp) = (
            psnr(&pictures[pictures.len() - 2], &source),
            psnr(&pictures[pictures.len() - 1], &source),
        );
        println!("{encoder}: PSNR: last moving picture {moving:.2} dB, refined {sharp:.2} dB, {sharp_at:?} after the stop");
        assert!(
            sharp >= 45.0,
            "{encoder}: the refined picture is at {sharp:.2} dB"
        );
        assert!(
            sharp > moving + 1.0,
            "{encoder}: refined {sharp:.2} dB against {moving:.2} dB"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_refresh_the_last_moving_picture_stays() {
    let source = final_luma();
    let (frames, refinements) = drag(EncoderKind::OpenH264, None).await;
    assert_eq!(
        after_keyframe(&frames),
        MOTION as usize,
        "no frame after the motion"
    );
    assert_eq!(refinements, 0);
    let pictures = decode(&frames, "refresh-off.h264");
    let last = psnr(pictures.last().unwrap(), &source);
    println!("PSNR without refinement: {last:.2} dB");
}

/// The demo's still screen in Chromium: one sharp keyframe and nothing
/// more; pointer motion, then one refinement, all decoded.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_gets_one_still_keyframe_then_one_refinement_after_motion() {
    let z = Zerocast::demo(&["--static", "--width", "640", "--height", "360"]);
    let (mut c, _) = watch_in_chromium(&z.url, 1).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let still = z.stats();
    let scanout = &still["scanouts"][0];
    assert_eq!(
        scanout["frames"], 1,
        "a still screen: its keyframe alone ({still})"
    );
    assert_eq!(scanout["refinements"], 0, "coded still: nothing to refine");
    // The pointer moves across the page, then stops.
    for x in (20..300).step_by(20) {
        c.call(
            "Input.dispatchMouseEvent",
            serde_json::json!({ "type": "mouseMoved", "x": x, "y": 100 }),
        )
        .await
        .expect("move the pointer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Bounded wait for the refinement (150 ms after the last move).
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let s = z.stats();
        if s["scanouts"][0]["refinements"] == 1 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let scanout = &stats["scanouts"][0];
    assert_eq!(scanout["refinements"], 1, "{stats}");
    let frames = scanout["frames"].as_u64().unwrap();
    assert!(frames > 2, "the pointer's motion was encoded: {stats}");
    // Nothing more while still; the page decodes every frame, refinement too.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(z.stats()["scanouts"][0]["frames"], frames);
    let page = c
        .eval("JSON.parse(JSON.stringify(window.zerocastStats))")
        .await
        .unwrap();
    assert_eq!(page["decoded"].as_u64(), Some(frames), "{page}");
    assert_eq!(page["errors"], 0, "{page}");
}

/// The page's canvas as luma (BT.601, limited range: what the encoder's
/// input was converted with), read through DevTools.
async fn canvas_luma(c: &mut zerocast_chromium::Chromium) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = c
        .eval(
            r#"(() => {
                const canvas = document.getElementById("screen");
                const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                const y = new Uint8Array(canvas.width * canvas.height);
                for (let i = 0; i < y.length; i++) {
                    y[i] = Math.round(16 + (65.481 * px[4 * i] + 128.553 * px[4 * i + 1] + 24.966 * px[4 * i + 2]) / 255);
                }
                let s = "";
                for (let i = 0; i < y.length; i += 0x8000) s += String.fromCharCode.apply(null, y.subarray(i, i + 0x8000));
                return btoa(s);
            })()"#,
        )
        .await
        .expect("read the canvas");
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_str().expect("a string"))
        .expect("base64")
}

/// The same drag into real Chromium through the web gateway: the page
/// decodes every frame, the refinement too, and what it shows once still
/// is the refined picture.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_shows_the_refined_picture() {
    for encoder in EncoderKind::ALL {
        chromium_shows_the_refined_picture_of(encoder).await;
    }
}

async fn chromium_shows_the_refined_picture_of(encoder: EncoderKind) {
    let source = final_luma();
    let (stream, go) = drag_stream(encoder, Some(Duration::from_millis(150)));
    let registry = Arc::new(Registry::new(encoder, EncoderSettings::default()));
    let stream = registry.add(stream);
    let control = Token::random().unwrap();
    let access = AccessConfig {
        control: control.clone(),
        view: Token::random().unwrap(),
        hosts: Vec::new(),
        origins: Vec::new(),
    };
    let (addr, _, _task) = Gateway::new(registry, None, access)
        .serve("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let url = format!("http://{addr}/?token={}", control.expose());
    let (mut c, _) = watch_in_chromium(&url, 1).await;
    go.open();
    let deadline = Instant::now() + Duration::from_secs(30);
    let frames = u64::from(MOTION) + 2;
    let page = loop {
        let page = c
            .eval("JSON.parse(JSON.stringify(window.zerocastStats))")
            .await
            .unwrap();
        if page["decoded"].as_u64() >= Some(frames) || Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(page["decoded"].as_u64(), Some(frames), "{page}");
    assert_eq!(page["errors"], 0, "{encoder}: {page}");
    assert_eq!(stream.stats().refinements, 1);
    let shown = canvas_luma(&mut c).await;
    assert_eq!(
        shown.len(),
        source.len(),
        "the canvas is the picture's size"
    );
    let now = psnr(&shown, &source);
    println!(
        "{encoder}: Chromium's canvas against the source once still: {now:.2} dB ({})",
        page["codec"]
    );
    assert!(now >= 45.0, "{encoder}: the page shows {now:.2} dB");
}
