//! [`InputBudget`]: how much input one viewer may hand to the desktop, so
//! that a viewer sending thousands of events a second cannot crowd out the
//! others in the queue they all share (QEMU's QMP connection, one command
//! at a time). Sans I/O: the caller passes the time.
//!
//! A token bucket: [`InputBudget::BURST`] events at once, then
//! [`InputBudget::PER_SECOND`]. Over budget:
//! - a pointer move waits, and a later move replaces it (absolute) or adds
//!   to it (relative): only where the pointer ends up matters, so it goes
//!   as soon as the budget allows ([`InputBudget::ready_at`], [`InputBudget::poll`]);
//! - a press or a wheel turn is dropped;
//! - the release of a key or button this viewer holds always passes, or
//!   the key would stay down in the guest.
//!
//! Events keep their order: a pending move goes before the next event that
//! passes, so a click lands where the pointer was moved.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use zerocast_input::{Button, InputEvent};

/// The longest a viewer's drops go unreported in the log.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Something a viewer holds down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Pressed {
    Key(u16),
    Button(Button),
}

/// One viewer's input budget (see the module docs).
#[derive(Debug)]
pub struct InputBudget {
    /// Credit one event takes: a second over the sustained rate.
    cost: Duration,
    /// Most credit saved up: `BURST` events' worth.
    cap: Duration,
    credit: Duration,
    /// When `credit` was last brought up to date.
    at: Instant,
    /// The latest pointer move over budget, waiting for credit.
    pending: Option<InputEvent>,
    /// Presses let through whose release has not been: releases of
    /// these always pass, and only these, so releases cannot be a flood
    /// of their own.
    down: HashSet<Pressed>,
    dropped: u64,
    /// Dropped since the last log line, and when that was.
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl InputBudget {
    /// Events a viewer may send at once.
    pub const BURST: u32 = 100;
    /// Events a second a viewer may send on and on.
    pub const PER_SECOND: u32 = 200;

    /// The default budget, full at `now`.
    pub fn new(now: Instant) -> Self {
        Self::with_rate(now, Self::BURST, Self::PER_SECOND)
    }

    /// `burst` events at once, then `per_second` (at least 1).
    pub fn with_rate(now: Instant, burst: u32, per_second: u32) -> Self {
        let cost = Duration::from_secs(1) / per_second.max(1);
        let cap = cost * burst;
        InputBudget {
            cost,
            cap,
            credit: cap,
            at: now,
            pending: None,
            down: HashSet::new(),
            dropped: 0,
            unlogged: 0,
            logged_at: None,
        }
    }

    /// What to hand on now for `event`, in order: none (dropped, or a
    /// move left pending), the event, or a pending move and then the event.
    pub fn admit(&mut self, now: Instant, event: InputEvent) -> impl Iterator<Item = InputEvent> {
        self.refill(now);
        let passed: [Option<InputEvent>; 2] = match event {
            InputEvent::MoveAbs { .. } | InputEvent::MoveRel { .. } => {
                let moved = self.merge_move(event);
                if self.spend(1) {
                    [Some(moved), None]
                } else {
                    self.pending = Some(moved);
                    [None, None]
                }
            }
            _ if released(&event).is_some_and(|p| self.down.remove(&p)) => {
                // Always passes; charged as far as there is credit, so a
                // viewer's releases count against its presses.
                let moved = self.pending.take();
                let n = 1 + u32::from(moved.is_some());
                self.credit = self.credit.saturating_sub(self.cost * n);
                [moved, Some(event)]
            }
            _ => {
                let n = 1 + u32::from(self.pending.is_some());
                if self.spend(n) {
                    if let Some(p) = pressed(&event) {
                        self.down.insert(p);
                    }
                    [self.pending.take(), Some(event)]
                } else {
                    self.drop_one();
                    [None, None]
                }
            }
        };
        passed.into_iter().flatten()
    }

    /// The pending pointer move, once there is credit for it.
    pub fn poll(&mut self, now: Instant) -> Option<InputEvent> {
        self.refill(now);
        if self.pending.is_some() && self.spend(1) {
            self.pending.take()
        } else {
            None
        }
    }

    /// When [`InputBudget::poll`] will have the pending move; `None` when
    /// no move is waiting.
    pub fn ready_at(&self) -> Option<Instant> {
        self.pending
            .map(|_| self.at + self.cost.saturating_sub(self.credit))
    }

    /// Events dropped so far (moves replaced by later ones included).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Drops to log now: the number since the last line, at most once
    /// every few seconds, `None` when there is nothing to say yet.
    pub fn drops_to_log(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .logged_at
            .is_none_or(|t| now.saturating_duration_since(t) >= LOG_EVERY);
        if self.unlogged == 0 || !due {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    fn refill(&mut self, now: Instant) {
        if now > self.at {
            self.credit = (self.credit + (now - self.at)).min(self.cap);
            self.at = now;
        }
    }

    /// Takes credit for `n` events if there is that much.
    fn spend(&mut self, n: u32) -> bool {
        let price = self.cost * n;
        let enough = self.credit >= price;
        if enough {
            self.credit -= price;
        }
        enough
    }

    fn drop_one(&mut self) {
        self.dropped += 1;
        self.unlogged += 1;
    }

    /// `event` with the pending move folded in: relative motion adds up,
    /// an absolute position replaces whatever was pending.
    fn merge_move(&mut self, event: InputEvent) -> InputEvent {
        match (self.pending.take(), event) {
            (None, event) => event,
            (Some(InputEvent::MoveRel { dx: a, dy: b }), InputEvent::MoveRel { dx, dy }) => {
                self.drop_one();
                InputEvent::MoveRel {
                    dx: a.saturating_add(dx),
                    dy: b.saturating_add(dy),
                }
            }
            (Some(_), event) => {
                self.drop_one();
                event
            }
        }
    }
}

fn pressed(event: &InputEvent) -> Option<Pressed> {
    match *event {
        InputEvent::Key { code, down: true } => Some(Pressed::Key(code)),
        InputEvent::Button { button, down: true } => Some(Pressed::Button(button)),
        _ => None,
    }
}

fn released(event: &InputEvent) -> Option<Pressed> {
    match *event {
        InputEvent::Key { code, down: false } => Some(Pressed::Key(code)),
        InputEvent::Button {
            button,
            down: false,
        } => Some(Pressed::Button(button)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: u16, down: bool) -> InputEvent {
        InputEvent::Key { code, down }
    }

    fn click(down: bool) -> InputEvent {
        InputEvent::Button {
            button: Button::Left,
            down,
        }
    }

    fn admit(b: &mut InputBudget, now: Instant, event: InputEvent) -> Vec<InputEvent> {
        b.admit(now, event).collect()
    }

    #[test]
    fn a_flood_is_cut_to_the_budget_and_another_viewer_keeps_all_of_its_keys() {
        let t0 = Instant::now();
        let (mut flood, mut typist) = (InputBudget::new(t0), InputBudget::new(t0));
        let (mut flooded, mut typed) = (0u32, 0u32);
        // One second of virtual time: the flood sends 5000 presses, the
        // typist 20 presses and releases, interleaved.
        for i in 0..5000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 200);
            flooded += u32::try_from(admit(&mut flood, now, key(30, true)).len()).unwrap();
            if i % 250 == 0 {
                for down in [true, false] {
                    typed += u32::try_from(admit(&mut typist, now, key(48, down)).len()).unwrap();
                }
            }
        }
        // The burst plus one second at the sustained rate, give or take one.
        let allowed = InputBudget::BURST + InputBudget::PER_SECOND;
        assert!(
            (allowed - 1..=allowed).contains(&flooded),
            "{flooded} of the flood passed"
        );
        assert_eq!(flood.dropped(), u64::from(5000 - flooded));
        assert_eq!(typed, 40);
        assert_eq!(typist.dropped(), 0);
    }

    #[test]
    fn releases_of_held_keys_always_pass_other_releases_do_not_flood() {
        let t0 = Instant::now();
        let mut b = InputBudget::with_rate(t0, 3, 1);
        assert_eq!(admit(&mut b, t0, key(29, true)), [key(29, true)]); // Ctrl
        assert_eq!(admit(&mut b, t0, click(true)), [click(true)]);
        assert_eq!(admit(&mut b, t0, key(30, true)), [key(30, true)]);
        // Out of credit: presses go, releases of what is held pass.
        assert!(admit(&mut b, t0, key(31, true)).is_empty());
        assert_eq!(admit(&mut b, t0, key(29, false)), [key(29, false)]);
        assert_eq!(admit(&mut b, t0, click(false)), [click(false)]);
        assert_eq!(admit(&mut b, t0, key(30, false)), [key(30, false)]);
        // Released once: a second release, or one of a dropped press, is
        // an ordinary event and over budget.
        assert!(admit(&mut b, t0, key(30, false)).is_empty());
        assert!(admit(&mut b, t0, key(31, false)).is_empty());
        assert_eq!(b.dropped(), 3);
    }

    #[test]
    fn moves_over_budget_coalesce_and_go_when_credit_comes() {
        let t0 = Instant::now();
        let mut b = InputBudget::with_rate(t0, 1, 10); // one event per 100 ms
        let at = |x| InputEvent::MoveAbs { x, y: 0.5 };
        assert_eq!(admit(&mut b, t0, at(0.1)), [at(0.1)]);
        assert_eq!(b.ready_at(), None);
        for x in [0.2, 0.3, 0.4] {
            assert!(admit(&mut b, t0, at(x)).is_empty());
        }
        assert_eq!(b.ready_at(), Some(t0 + Duration::from_millis(100)));
        assert_eq!(b.poll(t0 + Duration::from_millis(99)), None);
        assert_eq!(b.poll(t0 + Duration::from_millis(100)), Some(at(0.4)));
        assert_eq!(b.ready_at(), None);
        assert_eq!(b.dropped(), 2, "0.2 and 0.3 were replaced");

        // Relative motion adds up instead.
        let t1 = t0 + Duration::from_millis(100);
        let by = |dx| InputEvent::MoveRel { dx, dy: 1 };
        for dx in [3, 4, -2] {
            assert!(admit(&mut b, t1, by(dx)).is_empty());
        }
        assert_eq!(
            b.poll(t1 + Duration::from_millis(100)),
            Some(InputEvent::MoveRel { dx: 5, dy: 3 })
        );
    }

    #[test]
    fn a_pending_move_goes_before_the_next_event_that_passes() {
        let t0 = Instant::now();
        let mut b = InputBudget::with_rate(t0, 2, 10);
        let to = InputEvent::MoveAbs { x: 0.9, y: 0.9 };
        assert_eq!(admit(&mut b, t0, click(true)), [click(true)]);
        assert_eq!(admit(&mut b, t0, key(30, true)), [key(30, true)]);
        assert!(admit(&mut b, t0, to).is_empty());
        // The release passes, after the move it must not overtake.
        assert_eq!(admit(&mut b, t0, click(false)), [to, click(false)]);
        // A press needs credit for the pending move too.
        assert!(admit(&mut b, t0, to).is_empty());
        let t1 = t0 + Duration::from_millis(100);
        assert!(admit(&mut b, t1, key(31, true)).is_empty());
        let t2 = t0 + Duration::from_millis(200);
        assert_eq!(admit(&mut b, t2, key(31, true)), [to, key(31, true)]);
    }

    #[test]
    fn drops_are_logged_at_most_every_few_seconds() {
        let t0 = Instant::now();
        let mut b = InputBudget::with_rate(t0, 0, 1);
        assert_eq!(b.drops_to_log(t0), None);
        for _ in 0..3 {
            let _ = admit(&mut b, t0, key(30, true));
        }
        assert_eq!(b.drops_to_log(t0), Some(3));
        let _ = admit(&mut b, t0, key(30, true));
        assert_eq!(b.drops_to_log(t0 + Duration::from_secs(1)), None);
        assert_eq!(b.drops_to_log(t0 + LOG_EVERY), Some(1));
        assert_eq!(b.dropped(), 4);
    }
}
