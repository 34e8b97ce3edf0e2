//! `zerocast soak` for a minute: every healthy viewer gets every frame
//! while a throttled viewer, a reconnecting one and a hostile client do
//! their worst, and the server's descriptors come back to where they were.

mod harness;

use std::process::Command;

use harness::{tmp, BIN};

#[test]
fn a_short_soak_loses_nothing_and_leaks_no_descriptor() {
    let json = tmp("soak.json");
    let out = Command::new(BIN)
        .args([
            "soak",
            "--seconds",
            "60",
            "--width",
            "640",
            "--height",
            "360",
            "--fps",
            "30",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("run zerocast soak");
    let printed = String::from_utf8_lossy(&out.stdout);
    eprintln!("{printed}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let encoded = r["frames_encoded"].as_u64().unwrap();
    assert!(encoded > 100, "the scanout ran: {r}");
    assert_eq!(
        r["delivered"].as_array().unwrap().len(),
        20,
        "16 WebSocket + 4 HXFR"
    );
    assert!(
        r["delivered_ratio_min"].as_f64().unwrap() >= 0.98,
        "a healthy viewer missed frames: {r}"
    );
    assert!(
        r["throttled_delivered"].as_u64().unwrap() < encoded * 9 / 10,
        "the throttled viewer really was slow (and the others were not held back with it): {r}"
    );
    assert_eq!(r["healthy_dropped"], false, "{r}");
    assert!(r["reconnects"].as_u64().unwrap() > 5, "{r}");
    assert!(r["hostile_attempts"].as_u64().unwrap() > 10, "{r}");
    let (start, end) = (
        r["fds_start"].as_u64().unwrap(),
        r["fds_end"].as_u64().unwrap(),
    );
    assert!(end <= start + 2, "descriptors {start} -> {end}: {r}");
}
