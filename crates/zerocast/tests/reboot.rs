//! A guest that reboots mid-stream: QEMU resets the machine, the guest
//! boots again on the same display, and a subscriber connected all along
//! sees the new boot's screen, starting at a keyframe, without reconnecting.

mod harness;

use std::io::Write;
use std::time::{Duration, Instant};

use harness::subscriber::{Event, Subscriber};
use harness::{boot_test_guest, stamps, tmp, wait_for_text};

/// How many times `needle` is in the file.
fn count(path: &std::path::Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

#[test]
fn guest_reboot_mid_stream_keeps_the_subscriber() {
    // The init reboots 12 s after every start: long enough for the flipper
    // to show frames in each boot under TCG.
    let vm = boot_test_guest(
        "zerocast.fps=10 drm_kms_helper.fbdev_emulation=0 zerocast.reboot_after=12",
        &[],
    );
    let serial = vm.serial.clone().expect("serial log");
    wait_for_text(&serial, "zerocast-flipper: frame", Duration::from_secs(120));
    let mut sub = Subscriber::connect(vm.hxfr_addr(), 0, Duration::from_millis(500));

    // Frames until the second boot's flipper has shown 30 of its own.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut frames = Vec::new();
    while count(&serial, "zerocast-flipper: frame 30 ") < 2 {
        assert!(
            Instant::now() < deadline,
            "the guest did not come back within 180 s:\n{}",
            std::fs::read_to_string(&serial).unwrap_or_default()
        );
        match sub.next() {
            Event::Frame(f) => frames.push(f),
            Event::Idle => {}
            Event::Error(e) => panic!("the subscriber got an ERROR across the reboot: {e}"),
            Event::Closed => panic!("the subscriber was dropped across the reboot"),
        }
    }
    let log = std::fs::read_to_string(&serial).unwrap();
    assert!(log.contains("zerocast-guest: rebooting"), "{log}");

    let path = tmp("reboot.h264");
    let mut file = std::fs::File::create(&path).unwrap();
    for f in &frames {
        file.write_all(&f.data).unwrap();
    }
    drop(file);
    let read = stamps(&path, 1280, 800);
    let keys: Vec<bool> = frames.iter().map(|f| f.keyframe).collect();
    eprintln!("stamps: {read:?}\nkeyframes: {keys:?}");
    // The flipper's counter restarts: a frame whose stamp is lower than the
    // highest seen before it is the new boot's.
    let first_old = read.iter().flatten().copied().next();
    let mut highest = 0;
    let restart = read
        .iter()
        .position(|s| match *s {
            Some(n) if n < highest => true,
            Some(n) => {
                highest = n;
                false
            }
            None => false,
        })
        .unwrap_or_else(|| panic!("no frame of the new boot (first {first_old:?}): {read:?}"));
    let new: Vec<u32> = read[restart..].iter().flatten().copied().collect();
    assert!(new[0] < 30, "the new boot's frames start low: {new:?}");
    assert!(
        new.windows(2).all(|w| w[1] >= w[0]) && new.len() >= 10,
        "the new boot's frames advance: {new:?}"
    );
    // Between the last frame of the old boot and the first of the new one
    // there is a keyframe, so a decoder that joined before the reboot needs
    // nothing from the old boot's pictures.
    let last_old = read[..restart]
        .iter()
        .rposition(Option::is_some)
        .expect("frames of the old boot");
    assert!(
        keys[last_old + 1..=restart].contains(&true),
        "a keyframe starts the new boot's screen: {keys:?}"
    );
}
