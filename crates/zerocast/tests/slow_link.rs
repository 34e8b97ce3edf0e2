//! A subscriber behind a link that drops from 50 to 2 Mbit/s and back,
//! built for real: a network namespace joined to the host by a veth pair,
//! the host side shaped with `tc tbf`. zerocast (the demo) listens on the
//! host side; the subscriber's socket lives in the namespace. Asserted: the
//! connection survives, frames come again after the link returns, and a
//! keyframe restarts the picture. Printed, not asserted (they depend on the
//! machine): how long after the link returns frames are fresh again
//! (captured less than 100 ms before they arrive) and their latency over
//! the next second. Needs root (CI runs the tests as root) and iproute2;
//! everything it creates is removed when it ends, even on failure.

mod harness;

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use harness::subscriber::{Event, Frame, Subscriber};
use harness::{require, Zerocast};

/// A namespace with a veth pair to the host, shaped on the host side (what
/// the host sends to the namespace). Removed on drop.
struct Link {
    ns: String,
    host_if: String,
    /// The host side's address; the namespace's is `.2`.
    host: String,
}

fn ip(args: &[&str]) {
    run("ip", args);
}

fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Link {
    fn new() -> Link {
        require("ip");
        require("tc");
        let id = std::process::id();
        // Interface names are at most 15 bytes; the subnet is private and
        // ours alone (a /30 per test process).
        let link = Link {
            ns: format!("zerocast-slow-{id}"),
            host_if: format!("zcs{id}h"),
            host: format!("10.213.{}.1", id % 250),
        };
        let ns_if = format!("zcs{id}n");
        let peer = format!("10.213.{}.2/30", id % 250);
        ip(&["netns", "add", &link.ns]);
        ip(&[
            "link",
            "add",
            &link.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
            "netns",
            &link.ns,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", link.host),
            "dev",
            &link.host_if,
        ]);
        ip(&["link", "set", &link.host_if, "up"]);
        ip(&["-n", &link.ns, "addr", "add", &peer, "dev", &ns_if]);
        ip(&["-n", &link.ns, "link", "set", &ns_if, "up"]);
        ip(&["-n", &link.ns, "link", "set", "lo", "up"]);
        link
    }

    /// Shapes the host-to-namespace direction to `rate` (tc's units, e.g.
    /// `50mbit`), with a router-like queue of 50 ms.
    fn rate(&self, rate: &str) {
        run(
            "tc",
            &[
                "qdisc",
                "replace",
                "dev",
                &self.host_if,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                "64kb",
                "latency",
                "50ms",
            ],
        );
    }

    /// Runs `f` on a thread of its own inside the namespace: the sockets
    /// it opens live there.
    fn spawn_inside<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns(2) with a namespace file we hold open; it
            // changes only this thread's network namespace, which no Rust
            // invariant depends on.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Drop for Link {
    /// Deleting the namespace deletes the veth pair (and the qdisc on it).
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Milliseconds of `d`, for printing.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p`th percentile (0..=100) of `ages`.
fn percentile(ages: &mut [Duration], p: usize) -> Duration {
    ages.sort();
    ages.get((ages.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or_default()
}

#[test]
fn a_subscriber_behind_a_link_that_drops_to_2_mbit_recovers() {
    let link = Link::new();
    link.rate("50mbit");
    let hxfr = format!("tcp:{}:0", link.host);
    // The demo's defaults, 1920x1080 at 60 fps: about 3.5 Mbit/s of the
    // synthetic desktop, more than the slow link carries.
    let z = Zerocast::demo(&["--hxfr", &hxfr, "--hxfr-allow-remote"]);
    assert!(z.hxfr_addr().starts_with(&link.host), "{}", z.hxfr);

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, addr) = (stop.clone(), z.hxfr_addr().to_owned());
        link.spawn_inside(move || {
            let mut sub = Subscriber::connect(&addr, 0, Duration::from_millis(200));
            let mut frames: Vec<Frame> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match sub.next() {
                    Event::Frame(f) => frames.push(f),
                    Event::Idle => {}
                    Event::Error(e) => panic!("ERROR from the server: {e}"),
                    Event::Closed => panic!("the server dropped the subscriber"),
                }
            }
            frames
        })
    };

    let phase = Duration::from_secs(5);
    std::thread::sleep(phase);
    let slow_at = SystemTime::now();
    link.rate("2mbit");
    std::thread::sleep(phase);
    let back_at = SystemTime::now();
    link.rate("50mbit");
    std::thread::sleep(phase);
    stop.store(true, Ordering::Relaxed);
    let frames = watcher.join().expect("the subscriber thread");

    let before: Vec<&Frame> = frames.iter().filter(|f| f.arrived < slow_at).collect();
    let slow: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.arrived >= slow_at && f.arrived < back_at)
        .collect();
    let after: Vec<&Frame> = frames.iter().filter(|f| f.arrived >= back_at).collect();
    let since_back = |f: &Frame| f.arrived.duration_since(back_at).unwrap_or_default();
    let fresh = after
        .iter()
        .position(|f| f.age() < Duration::from_millis(100));
    let mut calm: Vec<Duration> = before.iter().map(|f| f.age()).collect();
    let mut slow_ages: Vec<Duration> = slow.iter().map(|f| f.age()).collect();
    let mbit = |fs: &[&Frame]| {
        let bytes: usize = fs.iter().map(|f| f.data.len()).sum();
        bytes as f64 * 8.0 / phase.as_secs_f64() / 1e6
    };
    eprintln!(
        "slow-link: before: {} frames ({:.1} Mbit/s), median latency {:.0} ms; at 2 Mbit/s: {} frames ({:.1} Mbit/s, {} keyframes), median latency {:.0} ms, max {:.0} ms",
        before.len(),
        mbit(&before),
        ms(percentile(&mut calm, 50)),
        slow.len(),
        mbit(&slow),
        slow.iter().filter(|f| f.keyframe).count(),
        ms(percentile(&mut slow_ages, 50)),
        ms(percentile(&mut slow_ages, 100)),
    );
    eprintln!(
        "slow-link: link back: first frame after {:.0} ms (latency {:.0} ms), first keyframe after {}",
        ms(since_back(after[0])),
        ms(after[0].age()),
        after
            .iter()
            .find(|f| f.keyframe)
            .map_or("none".to_owned(), |f| format!("{:.0} ms", ms(since_back(f)))),
    );
    match fresh {
        Some(i) => {
            let start = after[i].arrived;
            let mut next: Vec<Duration> = after[i..]
                .iter()
                .filter(|f| {
                    f.arrived.duration_since(start).unwrap_or_default() < Duration::from_secs(1)
                })
                .map(|f| f.age())
                .collect();
            eprintln!(
                "slow-link: fresh (< 100 ms) after {:.0} ms; the next second: {} frames, latency median {:.0} ms, p95 {:.0} ms, max {:.0} ms",
                ms(since_back(after[i])),
                next.len(),
                ms(percentile(&mut next, 50)),
                ms(percentile(&mut next, 95)),
                ms(percentile(&mut next, 100)),
            );
        }
        None => eprintln!("slow-link: no frame younger than 100 ms after the link returned"),
    }
    assert!(!before.is_empty() && before[0].keyframe, "streams at first");
    assert!(
        !after.is_empty(),
        "frames come again after the link returns"
    );
    assert!(
        frames
            .iter()
            .skip(1)
            .any(|f| f.keyframe && f.arrived >= slow_at),
        "a keyframe restarts the picture after the link dropped"
    );
}
