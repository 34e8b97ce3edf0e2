//! Viewer input into the VM through QMP `input-send-event`.
//!
//! [`qmp_events`] turns one [`InputEvent`] into the `events` array of one
//! `input-send-event` command (pure). [`QmpInput`] is the [`InputSink`]
//! that queues those commands and runs them on a QMP connection of its own,
//! connecting again (with backoff) when that connection is lost.
//!
//! QEMU hands these events to its first input device of each kind: the
//! VM's virtio-keyboard and virtio-tablet (see `cmdline`). `input-send-event`
//! takes no `head` without a `device` (QEMU ignores it), and naming a
//! `device` crashes QEMU 10, so every scanout's input goes to the same
//! devices. Relative motion needs a relative pointer in the VM (add
//! `-device virtio-mouse-pci` through `VmConfig::extra_args`); without one
//! QEMU refuses it ("Input handler not found"), which counts as `failed`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use zerocast_input::{Button, InputEvent, InputSink};

use crate::keymap::qcode;
use crate::qmp::{Qmp, QmpError};

/// QEMU's absolute axis range is `0..=ABS_MAX` (`INPUT_EVENT_ABS_MAX`).
pub const ABS_MAX: u32 = 0x7fff;

/// Most wheel detents sent for one [`InputEvent::Wheel`] axis.
pub const MAX_DETENTS: u32 = 10;

/// The `events` of the `input-send-event` command for `event`; `None`
/// when QEMU has nothing for it: a key without a qcode, no motion, a
/// position that is not a number.
pub fn qmp_events(event: &InputEvent) -> Option<Vec<Value>> {
    let events = match *event {
        InputEvent::Key { code, down } => vec![json!({
            "type": "key",
            "data": { "down": down, "key": { "type": "qcode", "data": qcode(code)? } },
        })],
        InputEvent::Button { button, down } => vec![button_event(button_name(button), down)],
        InputEvent::MoveAbs { x, y } => {
            if !x.is_finite() || !y.is_finite() {
                return None;
            }
            vec![
                move_event("abs", "x", abs_value(x)),
                move_event("abs", "y", abs_value(y)),
            ]
        }
        InputEvent::MoveRel { dx, dy } => [("x", dx), ("y", dy)]
            .into_iter()
            .filter(|&(_, d)| d != 0)
            .map(|(axis, d)| move_event("rel", axis, i64::from(d)))
            .collect(),
        InputEvent::Wheel { dx, dy } => {
            // Positive dy scrolls down, positive dx right.
            let mut events = Vec::new();
            for (delta, positive, negative) in [
                (dy, "wheel-down", "wheel-up"),
                (dx, "wheel-right", "wheel-left"),
            ] {
                let name = if delta > 0.0 { positive } else { negative };
                for _ in 0..detents(delta) {
                    events.push(button_event(name, true));
                    events.push(button_event(name, false));
                }
            }
            events
        }
    };
    (!events.is_empty()).then_some(events)
}

fn button_name(button: Button) -> &'static str {
    match button {
        Button::Left => "left",
        Button::Middle => "middle",
        Button::Right => "right",
        Button::Side => "side",
        Button::Extra => "extra",
    }
}

fn button_event(button: &str, down: bool) -> Value {
    json!({ "type": "btn", "data": { "down": down, "button": button } })
}

fn move_event(kind: &str, axis: &str, value: i64) -> Value {
    json!({ "type": kind, "data": { "axis": axis, "value": value } })
}

/// 0.0..=1.0 (clamped) -> 0..=ABS_MAX.
// The product is rounded and within 0..=ABS_MAX, so `as` is exact. Callers
// pass finite values only.
#[allow(clippy::cast_possible_truncation)]
fn abs_value(v: f32) -> i64 {
    (f64::from(v.clamp(0.0, 1.0)) * f64::from(ABS_MAX)).round() as i64
}

/// Whole detents in `delta`, rounded, at most [`MAX_DETENTS`].
// Finite, rounded and clamped to 0..=MAX_DETENTS first, so `as` is exact.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn detents(delta: f32) -> u32 {
    if !delta.is_finite() {
        return 0;
    }
    let max = f64::from(MAX_DETENTS);
    f64::from(delta.abs()).round().min(max) as u32
}

/// What a [`QmpInput`] did with the events it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputStats {
    /// Accepted by QEMU.
    pub sent: u64,
    /// Refused by QEMU, or lost with the connection.
    pub failed: u64,
    /// Not sent: the queue was full, or the connection was being made
    /// again.
    pub dropped: u64,
    /// Nothing QEMU can take (see [`qmp_events`]).
    pub unmapped: u64,
    /// Times the QMP connection was made again after it was lost.
    pub reconnects: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    unmapped: AtomicU64,
    reconnects: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> InputStats {
        InputStats {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            unmapped: self.unmapped.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }
}

/// Adds one to `counter`; true when the new count is a power of two, so
/// repeated trouble is logged 1, 2, 4, 8... times, not once per event.
fn bump(counter: &AtomicU64) -> bool {
    (counter.fetch_add(1, Ordering::Relaxed) + 1).is_power_of_two()
}

/// An [`InputSink`] that delivers events to QEMU over QMP.
///
/// `send` never blocks: it queues (at most [`QmpInput::QUEUE`] commands)
/// and drops, counting, when the queue is full. A background task owns the
/// QMP connection and runs the commands in order; when the connection is
/// lost it connects to the socket again, [`QmpInput::RECONNECT_FIRST`]
/// doubling to [`QmpInput::RECONNECT_MAX`] between attempts, and drops
/// what comes meanwhile (stale by the time QEMU is back).
#[derive(Debug)]
pub struct QmpInput {
    queue: mpsc::Sender<Vec<Value>>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl QmpInput {
    /// Commands waiting at most.
    pub const QUEUE: usize = 1024;
    /// Pause before the first attempt to connect again.
    pub const RECONNECT_FIRST: Duration = Duration::from_millis(100);
    /// Longest pause between attempts.
    pub const RECONNECT_MAX: Duration = Duration::from_secs(2);

    /// Starts the delivery task on the current tokio runtime, on `qmp`,
    /// connected to the QMP socket at `path`, where it connects again if
    /// the connection is lost. It keeps a connection for as long as it
    /// runs, and QEMU serves one client per QMP socket: other QMP users
    /// need another `-qmp` socket.
    pub fn start(qmp: Qmp, path: impl Into<PathBuf>) -> Result<QmpInput, QmpError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| QmpError::NoRuntime("QmpInput::start"))?;
        let (queue, commands) = mpsc::channel(Self::QUEUE);
        let counters = Arc::new(Counters::default());
        let task = runtime.spawn(deliver(qmp, path.into(), commands, counters.clone()));
        Ok(QmpInput {
            queue,
            counters,
            task,
        })
    }

    pub fn stats(&self) -> InputStats {
        self.counters.snapshot()
    }

    /// Stops taking events, waits until the queued ones have been run,
    /// and returns the final counts.
    pub async fn close(self) -> InputStats {
        let QmpInput {
            queue,
            counters,
            task,
        } = self;
        drop(queue);
        if let Err(e) = task.await {
            warn!("QMP input task failed: {e}");
        }
        counters.snapshot()
    }
}

impl InputSink for QmpInput {
    fn send(&self, scanout: u32, event: InputEvent) {
        let Some(events) = qmp_events(&event) else {
            bump(&self.counters.unmapped);
            debug!(scanout, ?event, "no QEMU input event for this; dropped");
            return;
        };
        match self.queue.try_send(events) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if bump(&self.counters.dropped) {
                    warn!(
                        dropped = self.stats().dropped,
                        "QMP input queue full (QEMU is slow to take input); events dropped"
                    );
                }
            }
            // Only after the delivery task ended (it panicked).
            Err(mpsc::error::TrySendError::Closed(_)) => {
                if bump(&self.counters.dropped) {
                    warn!(
                        dropped = self.stats().dropped,
                        "QMP input has stopped; events dropped"
                    );
                }
            }
        }
    }
}

/// Runs queued `input-send-event` commands until the queue closes,
/// connecting again whenever the connection is lost.
async fn deliver(
    mut qmp: Qmp,
    path: PathBuf,
    mut commands: mpsc::Receiver<Vec<Value>>,
    counters: Arc<Counters>,
) {
    while let Some(events) = commands.recv().await {
        match qmp
            .execute("input-send-event", Some(json!({ "events": events })))
            .await
        {
            Ok(_) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e @ QmpError::Command { .. }) => {
                if bump(&counters.failed) {
                    warn!(
                        failed = counters.snapshot().failed,
                        "QEMU refused input: {e}"
                    );
                }
            }
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                warn!(
                    "QMP input connection lost, connecting again (input is dropped meanwhile): {e}"
                );
                // QEMU takes the next client only once this one has gone.
                drop(qmp);
                let Some(again) = reconnect(&path, &mut commands, &counters).await else {
                    return;
                };
                qmp = again;
            }
        }
    }
}

/// Connects to `path` again, waiting longer after each failed attempt,
/// and drops the commands that come meanwhile; `None` when the queue
/// closes first.
async fn reconnect(
    path: &std::path::Path,
    commands: &mut mpsc::Receiver<Vec<Value>>,
    counters: &Counters,
) -> Option<Qmp> {
    let mut pause = QmpInput::RECONNECT_FIRST;
    let dropped_before = counters.dropped.load(Ordering::Relaxed);
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        // A single try each time (no timeout of its own): the pause is ours.
        let wait = pause;
        let connect = async move {
            tokio::time::sleep(wait).await;
            Qmp::connect(path, Duration::ZERO).await
        };
        tokio::pin!(connect);
        let result = loop {
            tokio::select! {
                result = &mut connect => break result,
                command = commands.recv() => match command {
                    Some(_) => {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    None => return None,
                },
            }
        };
        match result {
            Ok(qmp) => {
                counters.reconnects.fetch_add(1, Ordering::Relaxed);
                let dropped = counters.dropped.load(Ordering::Relaxed) - dropped_before;
                info!(attempt, dropped, "QMP input connected again");
                return Some(qmp);
            }
            Err(e) => {
                if attempt.is_power_of_two() {
                    warn!(attempt, "QMP input: cannot connect again yet: {e}");
                }
                pause = (pause * 2).min(QmpInput::RECONNECT_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(event: InputEvent) -> Vec<Value> {
        qmp_events(&event).expect("events")
    }

    #[test]
    fn keys_become_qcodes() {
        assert_eq!(
            one(InputEvent::Key {
                code: 30,
                down: true
            }),
            [json!({"type": "key", "data": {"down": true, "key": {"type": "qcode", "data": "a"}}})]
        );
        assert_eq!(
            one(InputEvent::Key {
                code: 28,
                down: false
            }),
            [
                json!({"type": "key", "data": {"down": false, "key": {"type": "qcode", "data": "ret"}}})
            ]
        );
        for code in [0, 240, 0x2FF] {
            assert_eq!(qmp_events(&InputEvent::Key { code, down: true }), None);
        }
    }

    #[test]
    fn buttons_by_name() {
        let names = [
            (Button::Left, "left"),
            (Button::Middle, "middle"),
            (Button::Right, "right"),
            (Button::Side, "side"),
            (Button::Extra, "extra"),
        ];
        for (button, name) in names {
            assert_eq!(
                one(InputEvent::Button { button, down: true }),
                [json!({"type": "btn", "data": {"down": true, "button": name}})]
            );
        }
    }

    #[test]
    fn absolute_moves_scale_to_qemus_range() {
        let abs = |x, y| one(InputEvent::MoveAbs { x, y });
        assert_eq!(
            abs(0.0, 1.0),
            [
                json!({"type": "abs", "data": {"axis": "x", "value": 0}}),
                json!({"type": "abs", "data": {"axis": "y", "value": 0x7fff}}),
            ]
        );
        assert_eq!(abs(0.5, 0.25)[0]["data"]["value"], 16384);
        assert_eq!(abs(0.5, 0.25)[1]["data"]["value"], 8192);
        // Out of range clamps; not-a-number is dropped.
        assert_eq!(abs(-3.0, 7.0)[0]["data"]["value"], 0);
        assert_eq!(abs(-3.0, 7.0)[1]["data"]["value"], 0x7fff);
        assert_eq!(
            qmp_events(&InputEvent::MoveAbs {
                x: f32::NAN,
                y: 0.5
            }),
            None
        );
        assert_eq!(
            qmp_events(&InputEvent::MoveAbs {
                x: 0.5,
                y: f32::INFINITY
            }),
            None
        );
    }

    #[test]
    fn relative_moves_send_only_moving_axes() {
        assert_eq!(
            one(InputEvent::MoveRel { dx: -5, dy: 7 }),
            [
                json!({"type": "rel", "data": {"axis": "x", "value": -5}}),
                json!({"type": "rel", "data": {"axis": "y", "value": 7}}),
            ]
        );
        assert_eq!(
            one(InputEvent::MoveRel { dx: 0, dy: 3 }),
            [json!({"type": "rel", "data": {"axis": "y", "value": 3}})]
        );
        assert_eq!(qmp_events(&InputEvent::MoveRel { dx: 0, dy: 0 }), None);
    }

    #[test]
    fn wheel_detents_become_button_clicks() {
        let click = |name: &str| {
            [
                json!({"type": "btn", "data": {"down": true, "button": name}}),
                json!({"type": "btn", "data": {"down": false, "button": name}}),
            ]
        };
        assert_eq!(
            one(InputEvent::Wheel { dx: 0.0, dy: 1.0 }),
            click("wheel-down")
        );
        assert_eq!(
            one(InputEvent::Wheel { dx: 0.0, dy: -2.4 }),
            [click("wheel-up"), click("wheel-up")].concat()
        );
        assert_eq!(
            one(InputEvent::Wheel { dx: 1.0, dy: -0.6 }),
            [click("wheel-up"), click("wheel-right")].concat()
        );
        assert_eq!(
            one(InputEvent::Wheel { dx: -1.0, dy: 0.0 }),
            click("wheel-left")
        );
        assert_eq!(
            one(InputEvent::Wheel {
                dx: 0.0,
                dy: 1000.0
            })
            .len(),
            2 * MAX_DETENTS as usize
        );
        for (dx, dy) in [(0.0, 0.0), (0.3, -0.4), (f32::NAN, f32::INFINITY)] {
            assert_eq!(qmp_events(&InputEvent::Wheel { dx, dy }), None);
        }
    }

    /// A fake QEMU on a fresh socket, one client at a time like QEMU:
    /// greeting, then `answer` decides whether each input-send-event gets
    /// its reply; with `hang_up_after`, the first connection is closed
    /// after that many. Returns the path and a receiver of the events it
    /// was sent, each with the number of its connection (0, 1...).
    async fn fake_qemu(
        answer: bool,
        hang_up_after: Option<usize>,
    ) -> (std::path::PathBuf, mpsc::UnboundedReceiver<(u64, Value)>) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "zc-input-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let (seen, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for connection in 0u64.. {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let mut stream = BufReader::new(stream);
                let greeting = "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n";
                stream
                    .get_mut()
                    .write_all(greeting.as_bytes())
                    .await
                    .unwrap();
                let mut left = hang_up_after.filter(|_| connection == 0);
                let mut line = String::new();
                while left != Some(0) && matches!(stream.read_line(&mut line).await, Ok(1..)) {
                    let request: Value = serde_json::from_str(&line).unwrap();
                    line.clear();
                    let handshake = request["execute"] == "qmp_capabilities";
                    if !handshake {
                        let _ = seen.send((connection, request["arguments"]["events"].clone()));
                        left = left.map(|n| n - 1);
                    }
                    if handshake || answer {
                        let reply = format!("{{\"return\": {{}}, \"id\": {}}}\n", request["id"]);
                        stream.get_mut().write_all(reply.as_bytes()).await.unwrap();
                    }
                }
            }
        });
        (path, events)
    }

    fn key(code: u16) -> InputEvent {
        InputEvent::Key { code, down: true }
    }

    /// The qcode in events made from [`key`].
    fn qcode_of(events: &Value) -> &str {
        events[0]["data"]["key"]["data"].as_str().unwrap()
    }

    #[tokio::test]
    async fn input_resumes_after_qemu_hangs_up_and_takes_a_new_connection() {
        let (path, mut seen) = fake_qemu(true, Some(3)).await;
        let qmp = Qmp::connect(&path, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        let input = QmpInput::start(qmp, &path).unwrap();
        let mut sends = 0u64;
        for code in [16, 17, 18] {
            input.send(0, key(code)); // q w e
            sends += 1;
            assert_eq!(seen.recv().await.unwrap().0, 0);
        }
        // QEMU has hung up: the next command fails, and what comes while
        // the task connects again is dropped. Sends go on until one
        // arrives on the second connection.
        loop {
            input.send(0, key(30)); // a
            sends += 1;
            let wait = std::time::Duration::from_millis(200);
            if let Ok(Some((connection, events))) = tokio::time::timeout(wait, seen.recv()).await {
                assert_eq!((connection, qcode_of(&events)), (1, "a"));
                break;
            }
            assert!(sends < 100, "no input arrived after the hang-up");
        }
        for (code, qcode) in [(48, "b"), (46, "c"), (32, "d")] {
            input.send(0, key(code));
            sends += 1;
            // Skips an "a" that was on its way when the loop above gave up on it.
            let events = loop {
                let (connection, events) = seen.recv().await.unwrap();
                assert_eq!(connection, 1);
                if qcode_of(&events) != "a" {
                    break events;
                }
            };
            assert_eq!(qcode_of(&events), qcode);
        }
        let stats = input.close().await;
        assert_eq!(stats.reconnects, 1);
        assert_eq!(stats.failed, 1, "the command in flight at the hang-up");
        assert!(stats.sent >= 3 + 1 + 3, "{stats:?}");
        assert_eq!(
            stats.sent + stats.failed + stats.dropped,
            sends,
            "{stats:?}"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn closing_stops_the_task_while_qemu_is_gone() {
        let (path, mut seen) = fake_qemu(true, Some(1)).await;
        let qmp = Qmp::connect(&path, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        let input = QmpInput::start(qmp, &path).unwrap();
        // Connecting again fails from now on: the socket is gone.
        std::fs::remove_file(&path).unwrap();
        input.send(0, key(30));
        seen.recv().await.unwrap();
        for _ in 0..5 {
            input.send(0, key(30));
        }
        let closed = tokio::time::timeout(std::time::Duration::from_secs(10), input.close())
            .await
            .expect("close returns while the task is still trying to connect");
        assert_eq!(
            (
                closed.sent,
                closed.failed,
                closed.dropped,
                closed.reconnects
            ),
            (1, 1, 4, 0)
        );
    }

    #[tokio::test]
    async fn qmp_input_sends_in_order_and_counts() {
        let (path, mut seen) = fake_qemu(true, None).await;
        let qmp = Qmp::connect(&path, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        let input = QmpInput::start(qmp, &path).unwrap();
        input.send(
            0,
            InputEvent::Key {
                code: 30,
                down: true,
            },
        );
        input.send(
            0,
            InputEvent::Key {
                code: 0x2FF,
                down: true,
            },
        );
        input.send(
            1,
            InputEvent::Button {
                button: Button::Left,
                down: true,
            },
        );
        let stats = input.close().await;
        assert_eq!(
            stats,
            InputStats {
                sent: 2,
                failed: 0,
                dropped: 0,
                unmapped: 1,
                reconnects: 0,
            }
        );
        assert_eq!(seen.recv().await.unwrap().1[0]["type"], "key");
        assert_eq!(seen.recv().await.unwrap().1[0]["type"], "btn");
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_stalled_qemu_makes_send_drop_not_block() {
        let (path, mut seen) = fake_qemu(false, None).await;
        let qmp = Qmp::connect(&path, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        let input = QmpInput::start(qmp, &path).unwrap();
        let click = InputEvent::Button {
            button: Button::Left,
            down: true,
        };
        input.send(0, click);
        // The task is now waiting for QEMU's reply: the queue fills up.
        seen.recv().await.unwrap();
        for _ in 0..QmpInput::QUEUE + 10 {
            input.send(0, click);
        }
        assert_eq!(input.stats().dropped, 10);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn trouble_is_logged_at_powers_of_two() {
        let counter = AtomicU64::new(0);
        let logged: Vec<u64> = (1..=20).filter(|_| bump(&counter)).collect();
        assert_eq!(logged.len(), 5); // counts 1, 2, 4, 8, 16
        assert_eq!(counter.load(Ordering::Relaxed), 20);
    }
}
