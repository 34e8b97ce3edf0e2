//! [`PipelineCore`]: when a scanout's pipeline encodes, and whether the
//! picture must be a keyframe. Sans I/O: events and the time go in, an
//! [`Action`] comes out; no threads, no clocks, no encoder. The driver
//! thread feeds it; unit tests drive it in virtual time.
//!
//! The rules:
//! - Damage is encoded only while someone watches; unwatched damage is dropped.
//! - Encodes run at most at the stream's frame rate ([`FramePacer`]): a source
//!   paced at that rate, with jitter, has each of its frames encoded at once
//!   or a little later, and a faster one is encoded at exactly the frame
//!   rate, so a viewer that decodes the frame rate keeps up. Damage in
//!   between coalesces and the latest picture wins. Its rectangles add up, so
//!   an encode learns everything that changed since the one before it,
//!   watched or not; an encode that did not happen (no picture, a failure)
//!   leaves the next one to read everything.
//! - A keyframe is due when explicitly requested, or when a subscriber has no
//!   usable picture (it joined, or fell behind). A keyframe does not wait for
//!   the frame-rate slot.
//! - Explicit requests (KEYFRAME_REQ, a viewer's decoder reset) get at most
//!   one keyframe every [`REQUEST_SPACING`]: more requests coalesce, so a
//!   flood of them cannot make a still screen cost a full encode each.
//! - A keyframe published less than [`KEYFRAME_IN_FLIGHT`] ago may still be in
//!   a lagging subscriber's queue, so it is not encoded again before then. A
//!   new subscriber never waits for that: only keyframes published after it
//!   joined can reach it.
//! - Nothing is due while there is no picture (a guest that has not set a
//!   scanout, or whose picture failed to encode): requests wait for damage.
//! - With a refresh delay ([`PipelineCore::with_refresh`]): once the screen
//!   has been still that long after an encode, its picture is refined once
//!   ([`Action::Refine`]), then nothing until something changes. Damage in
//!   the meantime starts the wait again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use zerocast_frame::{Damage, FramePacer};

/// How long a published keyframe counts as on its way to the subscribers
/// still waiting for one, before they get another.
pub const KEYFRAME_IN_FLIGHT: Duration = Duration::from_millis(100);

/// The least time between two keyframes made for explicit requests.
pub const REQUEST_SPACING: Duration = Duration::from_millis(300);

/// Identifies one subscriber of one pipeline.
pub type SubscriberId = u64;

/// Something that happened, for [`PipelineCore::handle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The source has a new picture, complete at `captured_at`, differing
    /// from the one before in `area`.
    Damage { captured_at: Instant, area: Damage },
    /// A subscriber arrived; it needs a keyframe.
    Joined(SubscriberId),
    /// A subscriber lost `frames` frames by falling behind; it skips to the
    /// next keyframe.
    Lagged { id: SubscriberId, frames: u64 },
    /// A keyframe reached a waiting subscriber.
    Resumed(SubscriberId),
    /// A subscriber went away.
    Left(SubscriberId),
    /// Someone asked for a keyframe (KEYFRAME_REQ, a viewer's decoder reset).
    KeyframeRequested,
    /// The stream's frame rate changed: one frame lasts this long.
    FrameInterval(Duration),
    /// The refresh delay changed (`None`: never refine).
    RefreshAfter(Option<Duration>),
    /// The encode last asked for by [`Action::Encode`] is over.
    Encoded(Outcome),
}

/// How an encode ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An access unit was published.
    Published { keyframe: bool },
    /// The source had no picture to encode.
    NoPicture,
    /// The encoder refused the picture.
    Failed,
    /// A refinement had nothing to publish; the picture stands as it was.
    Unchanged,
}

/// What the driver should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Encode the source's current picture now, and report the
    /// [`Outcome`]. `captured_at` is when the picture was complete, or
    /// `None` when it is a re-encode of a picture already sent (a keyframe
    /// from a still screen). `damage` is what changed since the previous
    /// encode's picture. `still`: code it at the still quality, for it
    /// stays on screen (a still screen's keyframe, with refinement on).
    Encode {
        force_keyframe: bool,
        captured_at: Option<Instant>,
        damage: Damage,
        still: bool,
    },
    /// Encode the picture last encoded again, finer, as a refinement of what
    /// the subscribers have (the screen has been still), and report the
    /// [`Outcome`].
    Refine,
    /// Nothing to do before this instant unless an event arrives.
    WaitUntil(Instant),
    /// Nothing to do until an event arrives.
    Idle,
}

/// What a subscriber waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Has a usable picture chain.
    Nothing,
    /// A keyframe published at or after this instant.
    KeyframeSince(Instant),
}

/// Counters the core keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreCounters {
    /// Pictures dropped because nobody watched.
    pub unwatched: u64,
    /// Frames subscribers lost by falling behind.
    pub lagged: u64,
}

/// The decisions of one pipeline. See the module docs for the rules.
#[derive(Debug)]
pub struct PipelineCore {
    subscribers: BTreeMap<SubscriberId, Need>,
    /// When the newest picture not yet encoded was complete.
    damage: Option<Instant>,
    /// What changed since the picture of the last encode.
    area: Damage,
    /// The source has a picture that can be encoded.
    picture: bool,
    pacer: FramePacer,
    last_encode: Option<Instant>,
    last_keyframe: Option<Instant>,
    keyframe_requested: bool,
    /// The running encode was forced to answer a request.
    request_in_encode: bool,
    encoding: bool,
    /// How long the screen stays still before its picture is refined.
    refresh_after: Option<Duration>,
    /// The last picture published is refined (or there is none to refine).
    refined: bool,
    /// The running encode is a refinement.
    refining: bool,
    /// The running encode is at the still quality.
    still_in_encode: bool,
    counters: CoreCounters,
}

impl PipelineCore {
    pub fn new(interval: Duration) -> Self {
        PipelineCore {
            subscribers: BTreeMap::new(),
            damage: None,
            // Nothing encoded yet: the first encode reads everything.
            area: Damage::full(),
            picture: false,
            pacer: FramePacer::new(interval),
            last_encode: None,
            last_keyframe: None,
            keyframe_requested: false,
            request_in_encode: false,
            encoding: false,
            refresh_after: None,
            refined: true,
            refining: false,
            still_in_encode: false,
            counters: CoreCounters::default(),
        }
    }

    /// Refines a still picture once the screen has been still for `delay`.
    pub fn with_refresh(mut self, delay: Option<Duration>) -> Self {
        self.refresh_after = delay;
        self
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::Damage { captured_at, area } => {
                self.picture = true;
                self.area.add(&area);
                if self.subscribers.is_empty() {
                    self.counters.unwatched += 1;
                } else {
                    self.damage = Some(captured_at);
                }
            }
            Event::Joined(id) => {
                self.subscribers.insert(id, Need::KeyframeSince(now));
            }
            Event::Lagged { id, frames } => {
                self.counters.lagged += frames;
                // A keyframe published a moment ago may still be in its queue.
                let since = now.checked_sub(KEYFRAME_IN_FLIGHT).unwrap_or(now);
                if let Some(need) = self.subscribers.get_mut(&id) {
                    *need = Need::KeyframeSince(since);
                }
            }
            Event::Resumed(id) => {
                if let Some(need) = self.subscribers.get_mut(&id) {
                    *need = Need::Nothing;
                }
            }
            Event::Left(id) => {
                self.subscribers.remove(&id);
                if self.subscribers.is_empty() {
                    self.damage = None;
                }
            }
            Event::KeyframeRequested => self.keyframe_requested = true,
            Event::FrameInterval(d) => self.pacer.set_interval(d),
            Event::RefreshAfter(d) => self.refresh_after = d,
            Event::Encoded(outcome) => self.encoded(now, outcome),
        }
    }

    fn encoded(&mut self, now: Instant, outcome: Outcome) {
        // A published stream's producer encodes on its own: its keyframe
        // answers every request made so far.
        let ours = std::mem::replace(&mut self.encoding, false);
        if std::mem::take(&mut self.refining) {
            // Whatever came of it, a refinement is not tried twice for the
            // same picture; a failure is handled as any other.
            self.refined = true;
            if outcome == Outcome::Failed {
                self.picture = false;
                self.area = Damage::full();
                self.keyframe_requested = true;
            }
            return;
        }
        let request = if ours {
            std::mem::take(&mut self.request_in_encode)
        } else {
            std::mem::take(&mut self.keyframe_requested)
        };
        let still = std::mem::take(&mut self.still_in_encode);
        if matches!(outcome, Outcome::Published { .. }) {
            self.refined = still;
        }
        match outcome {
            Outcome::Published { keyframe: true } => self.last_keyframe = Some(now),
            // The request was not answered: it stays pending.
            Outcome::Published { keyframe: false } => self.keyframe_requested |= request,
            // Nothing to encode until the source has a new picture, and
            // the encoder's last picture is not known to be the one before.
            Outcome::NoPicture => {
                self.picture = false;
                self.area = Damage::full();
                self.keyframe_requested |= request;
            }
            // The encoder's state after a failure is unknown: the stream
            // resumes with a keyframe, no restart.
            Outcome::Failed => {
                self.picture = false;
                self.area = Damage::full();
                self.keyframe_requested = true;
            }
            Outcome::Unchanged => {}
        }
    }

    /// Whether the next picture must be a keyframe (also what a published
    /// stream's producer is told).
    pub fn keyframe_due(&self, now: Instant) -> bool {
        self.keyframe_wait(now) == Some(now)
    }

    /// When a keyframe is next needed: `now` if one is due, a later instant
    /// if one is in flight or a request must wait its turn, `None` if none is.
    fn keyframe_wait(&self, now: Instant) -> Option<Instant> {
        let request = self.keyframe_requested.then(|| {
            self.last_keyframe
                .map_or(now, |t| (t + REQUEST_SPACING).max(now))
        });
        match (request, self.subscriber_wait(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the waiting subscribers need a keyframe: `now` if one is due,
    /// a later instant if one is in flight, `None` if nobody waits.
    fn subscriber_wait(&self, now: Instant) -> Option<Instant> {
        let in_flight_until = self.last_keyframe.map(|t| t + KEYFRAME_IN_FLIGHT);
        self.subscribers
            .values()
            .filter_map(|need| match *need {
                Need::Nothing => None,
                Need::KeyframeSince(since) => match (self.last_keyframe, in_flight_until) {
                    (Some(kf), Some(until)) if kf >= since && now < until => Some(until),
                    _ => Some(now),
                },
            })
            .min()
    }

    /// What to do now. An [`Action::Encode`] must be answered with
    /// [`Event::Encoded`] before the next one is given.
    pub fn poll(&mut self, now: Instant) -> Action {
        if self.encoding || self.subscribers.is_empty() || !self.picture {
            return Action::Idle;
        }
        let wait = self.keyframe_wait(now);
        if wait == Some(now) {
            self.request_in_encode = std::mem::take(&mut self.keyframe_requested);
            return self.encode(now, true);
        }
        if self.damage.is_some() {
            let slot = self.pacer.slot(now);
            if now >= slot {
                return self.encode(now, false);
            }
            return Action::WaitUntil(wait.map_or(slot, |w| w.min(slot)));
        }
        if let Some(refresh) = self.refresh_due() {
            if now >= refresh {
                self.encoding = true;
                self.refining = true;
                return Action::Refine;
            }
            return Action::WaitUntil(wait.map_or(refresh, |w| w.min(refresh)));
        }
        wait.map_or(Action::Idle, Action::WaitUntil)
    }

    /// When the last picture is to be refined, if it is.
    fn refresh_due(&self) -> Option<Instant> {
        if self.refined {
            return None;
        }
        Some(self.last_encode? + self.refresh_after?)
    }

    fn encode(&mut self, now: Instant, force_keyframe: bool) -> Action {
        self.encoding = true;
        self.last_encode = Some(now);
        self.pacer.took(now);
        let captured_at = self.damage.take();
        // No new picture since the last encode: this one stays on screen.
        let still = captured_at.is_none() && self.refresh_after.is_some();
        self.still_in_encode = still;
        Action::Encode {
            force_keyframe,
            captured_at,
            damage: self.area.take(),
            still,
        }
    }

    /// Subscribers the core knows of.
    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    pub fn counters(&self) -> CoreCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core whose encodes are at least 12 ms apart, and a virtual clock.
    struct Sim {
        core: PipelineCore,
        t0: Instant,
        now: Instant,
    }

    impl Sim {
        fn new() -> Self {
            let t0 = Instant::now();
            Sim {
                // Frames of 16 ms: an encode may start 12 ms after the one
                // before.
                core: PipelineCore::new(Duration::from_millis(16)),
                t0,
                now: t0,
            }
        }

        fn at_ms(&mut self, ms: u64) -> &mut Self {
            self.now = self.t0 + Duration::from_millis(ms);
            self
        }

        fn event(&mut self, e: Event) -> &mut Self {
            self.core.handle(self.now, e);
            self
        }

        fn damage(&mut self) -> &mut Self {
            self.damage_in(Damage::full())
        }

        fn damage_in(&mut self, area: Damage) -> &mut Self {
            let captured_at = self.now;
            self.event(Event::Damage { captured_at, area })
        }

        fn poll(&mut self) -> Action {
            self.core.poll(self.now)
        }

        /// Polls, expects an encode, and finishes it as the encoder would.
        fn encode(&mut self) -> bool {
            match self.poll() {
                Action::Encode { force_keyframe, .. } => {
                    let outcome = Outcome::Published {
                        keyframe: force_keyframe,
                    };
                    self.event(Event::Encoded(outcome));
                    force_keyframe
                }
                other => panic!("expected an encode at {:?}, got {other:?}", self.now),
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
    }

    #[test]
    fn a_still_screen_with_nobody_watching_never_wakes() {
        let mut s = Sim::new();
        assert_eq!(s.poll(), Action::Idle);
        s.damage();
        assert_eq!(s.poll(), Action::Idle);
        assert_eq!(s.core.counters().unwatched, 1);
        assert_eq!(s.at_ms(10_000).poll(), Action::Idle);
    }

    #[test]
    fn a_new_subscriber_gets_a_keyframe_at_once_even_from_a_still_screen() {
        let mut s = Sim::new();
        s.damage();
        s.at_ms(5_000).event(Event::Joined(1));
        assert!(matches!(
            s.poll(),
            Action::Encode {
                force_keyframe: true,
                captured_at: None,
                ..
            }
        ));
        s.event(Event::Encoded(Outcome::Published { keyframe: true }));
        s.event(Event::Resumed(1));
        // Still screen, subscriber served: nothing to do, no timer.
        assert_eq!(s.poll(), Action::Idle);
    }

    #[test]
    fn nothing_is_encoded_before_the_source_has_a_picture() {
        let mut s = Sim::new();
        s.event(Event::Joined(1)).event(Event::KeyframeRequested);
        assert_eq!(s.poll(), Action::Idle);
        s.at_ms(30).damage();
        assert!(s.encode());
    }

    #[test]
    fn a_vanished_picture_keeps_requests_pending_until_new_damage() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(matches!(s.poll(), Action::Encode { .. }));
        s.event(Event::Encoded(Outcome::NoPicture));
        // No busy retry.
        assert_eq!(s.poll(), Action::Idle);
        s.at_ms(500).damage();
        assert!(s.encode(), "the waiting subscriber still gets its keyframe");
    }

    #[test]
    fn after_a_failed_encode_the_stream_resumes_with_a_keyframe() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        s.at_ms(20).damage();
        assert!(matches!(
            s.poll(),
            Action::Encode {
                force_keyframe: false,
                ..
            }
        ));
        s.event(Event::Encoded(Outcome::Failed));
        s.at_ms(400).damage();
        assert!(s.encode(), "the next picture is a keyframe");
    }

    #[test]
    fn a_failed_encode_waits_for_the_next_picture() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        s.at_ms(400).damage().event(Event::KeyframeRequested);
        assert!(matches!(s.poll(), Action::Encode { .. }));
        s.event(Event::Encoded(Outcome::Failed));
        assert_eq!(s.poll(), Action::Idle);
        s.at_ms(420).damage();
        assert!(s.encode(), "the request outlives the failure");
    }

    #[test]
    fn damage_faster_than_the_frame_rate_coalesces_to_the_latest_picture() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        // A guest flushing every millisecond: one encode per frame of 16 ms,
        // the first 12 ms after the keyframe (at 12, 28, ..., 108 ms).
        let mut encodes = 0;
        let mut last_captured = None;
        for ms in 1..=108 {
            s.at_ms(ms).damage();
            if let Action::Encode { captured_at, .. } = s.poll() {
                encodes += 1;
                last_captured = captured_at;
                s.event(Event::Encoded(Outcome::Published { keyframe: false }));
            }
        }
        assert_eq!(encodes, 7, "encodes in 108 ms");
        assert_eq!(last_captured, Some(s.at(108)), "the latest picture wins");
    }

    #[test]
    fn damaged_rectangles_add_up_until_an_encode_takes_them() {
        use zerocast_frame::Rect;
        let mut s = Sim::new();
        // Damage while nobody watches still counts for the next encode.
        s.damage_in(Damage::rect(Rect::new(0, 0, 8, 8)));
        s.event(Event::Joined(1));
        let take = |s: &mut Sim| match s.poll() {
            Action::Encode { damage, .. } => {
                s.event(Event::Encoded(Outcome::Published { keyframe: true }));
                damage
            }
            other => panic!("expected an encode, got {other:?}"),
        };
        assert!(take(&mut s).is_full(), "the first encode reads everything");
        s.event(Event::Resumed(1));
        let (a, b) = (Rect::new(0, 0, 8, 8), Rect::new(100, 50, 4, 4));
        s.at_ms(20).damage_in(Damage::rect(a));
        s.at_ms(21).damage_in(Damage::rect(b));
        s.at_ms(22).damage_in(Damage::rect(a));
        assert_eq!(take(&mut s).rects(), &[a, b], "coalesced while waiting");
        // A keyframe for a still screen changes nothing.
        s.at_ms(400).event(Event::KeyframeRequested);
        assert!(take(&mut s).is_empty());
        // An encode that failed: the next one reads everything.
        s.at_ms(800).damage_in(Damage::rect(a));
        assert!(matches!(s.poll(), Action::Encode { .. }));
        s.event(Event::Encoded(Outcome::Failed));
        s.at_ms(820).damage_in(Damage::rect(b));
        assert!(take(&mut s).is_full());
    }

    #[test]
    fn damage_inside_the_slot_waits_for_the_slot() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        s.at_ms(4).damage();
        assert_eq!(s.poll(), Action::WaitUntil(s.at(12)));
        s.at_ms(12);
        assert!(!s.encode());
        assert_eq!(s.poll(), Action::Idle);
    }

    /// Encodes of a source that always has a new picture, over `ms`.
    fn encodes_of_a_fast_source(s: &mut Sim, ms: u64) -> usize {
        let mut encodes = 0;
        for t in 0..ms {
            if let Action::Encode { .. } = s.at_ms(t).damage().poll() {
                s.event(Event::Encoded(Outcome::Published { keyframe: false }));
                encodes += 1;
            }
        }
        encodes
    }

    #[test]
    fn a_source_faster_than_the_frame_rate_is_encoded_at_the_frame_rate() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        // A new picture every millisecond for 1.6 s: 100 frames of 16 ms,
        // not the 133 that encodes 12 ms apart would make, which would
        // outrun a viewer that decodes the frame rate.
        let encodes = encodes_of_a_fast_source(&mut s, 1600);
        assert!((99..=101).contains(&encodes), "{encodes} encodes");
    }

    #[test]
    fn a_source_paced_at_the_stream_rate_loses_no_frame_to_jitter() {
        let mut s = Sim::new();
        s.event(Event::FrameInterval(FramePacer::interval_at(60.0)));
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        // Frames every 16 ms, each up to 3 ms early or late: each is encoded
        // (at once, or when its slot opens) before the next one replaces it.
        let arrivals: Vec<u64> = [3i64, -3, 2, -2, 0, 3, -3, 1]
            .iter()
            .zip(1..)
            .map(|(j, n)| u64::try_from(16 * n + j).unwrap())
            .collect();
        let mut encoded = 0;
        for (i, &ms) in arrivals.iter().enumerate() {
            s.at_ms(ms).damage();
            let mut action = s.poll();
            if let Action::WaitUntil(t) = action {
                let next = arrivals.get(i + 1).map_or(u64::MAX, |&n| n);
                assert!(
                    t < s.at(next),
                    "frame {i} would be replaced before its slot"
                );
                s.now = t;
                action = s.poll();
            }
            assert!(matches!(action, Action::Encode { .. }), "frame {i}");
            s.event(Event::Encoded(Outcome::Published { keyframe: false }));
            encoded += 1;
        }
        assert_eq!(encoded, arrivals.len());
    }

    #[test]
    fn a_new_frame_rate_changes_the_spacing() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        s.event(Event::FrameInterval(FramePacer::interval_at(10.0)));
        s.at_ms(20).damage();
        assert_eq!(s.poll(), Action::WaitUntil(s.at(75)));
    }

    #[test]
    fn explicit_requests_skip_the_slot_and_coalesce() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        s.at_ms(500)
            .event(Event::KeyframeRequested)
            .event(Event::KeyframeRequested);
        assert!(s.encode(), "one keyframe answers both, without waiting");
        assert_eq!(s.poll(), Action::Idle);
    }

    #[test]
    fn a_flood_of_requests_gets_one_keyframe_per_spacing() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        // A request every millisecond for a second, on a still screen.
        let mut keyframes = 0;
        for ms in 1..=1000 {
            s.at_ms(ms).event(Event::KeyframeRequested);
            match s.poll() {
                Action::Encode { .. } => {
                    keyframes += 1;
                    s.event(Event::Encoded(Outcome::Published { keyframe: true }));
                }
                Action::WaitUntil(t) => assert!(t <= s.at(ms) + REQUEST_SPACING),
                Action::Idle => panic!("a pending request is never forgotten"),
                Action::Refine => panic!("no refresh without a refresh delay"),
            }
        }
        assert_eq!(keyframes, 3, "at 300, 600 and 900 ms");
    }

    #[test]
    fn a_request_during_an_encode_gets_its_own_keyframe() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(matches!(s.poll(), Action::Encode { .. }));
        // The request arrives while the keyframe for the join is being encoded:
        // that keyframe may have been built before the requester reset.
        s.event(Event::KeyframeRequested);
        s.event(Event::Encoded(Outcome::Published { keyframe: true }));
        s.event(Event::Resumed(1));
        assert_eq!(s.poll(), Action::WaitUntil(s.at(300)), "its turn comes");
        s.at_ms(300);
        assert!(s.encode());
    }

    #[test]
    fn an_encoder_that_ignores_a_forced_keyframe_is_asked_again() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        s.at_ms(350).event(Event::KeyframeRequested);
        assert!(matches!(s.poll(), Action::Encode { .. }));
        s.event(Event::Encoded(Outcome::Published { keyframe: false }));
        assert!(matches!(
            s.poll(),
            Action::Encode {
                force_keyframe: true,
                ..
            }
        ));
    }

    #[test]
    fn a_lagging_subscriber_gets_a_keyframe_unless_one_is_in_flight() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1)).event(Event::Joined(2));
        assert!(s.encode());
        s.event(Event::Resumed(1)).event(Event::Resumed(2));
        // Subscriber 2 falls behind 40 ms after that keyframe: it may still
        // find it in its queue, so the pipeline waits until 100 ms.
        s.at_ms(40).event(Event::Lagged { id: 2, frames: 7 });
        assert_eq!(s.poll(), Action::WaitUntil(s.at(100)));
        assert_eq!(s.core.counters().lagged, 7);
        // It did not: a new keyframe at 100 ms, whatever the damage.
        s.at_ms(100);
        assert!(s.encode());
        s.event(Event::Resumed(2));
        assert_eq!(s.poll(), Action::Idle);
    }

    #[test]
    fn a_lagging_subscriber_that_finds_the_keyframe_costs_nothing() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.at_ms(30).event(Event::Lagged { id: 1, frames: 3 });
        s.at_ms(31).event(Event::Resumed(1));
        assert_eq!(s.at_ms(200).poll(), Action::Idle);
    }

    #[test]
    fn a_late_joiner_does_not_wait_for_a_keyframe_it_cannot_have_seen() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        s.at_ms(10).event(Event::Joined(2));
        assert!(s.encode(), "no 100 ms wait for a joiner");
    }

    #[test]
    fn a_subscriber_that_leaves_while_waiting_is_forgotten() {
        let mut s = Sim::new();
        s.event(Event::Joined(1)).damage();
        s.event(Event::Left(1));
        assert_eq!(s.poll(), Action::Idle);
        assert_eq!(s.core.subscribers(), 0);
        s.at_ms(50).damage();
        assert_eq!(s.poll(), Action::Idle);
        assert_eq!(s.core.counters().unwatched, 1, "the damage after it left");
    }

    #[test]
    fn events_about_unknown_subscribers_are_harmless() {
        let mut s = Sim::new();
        s.damage()
            .event(Event::Resumed(9))
            .event(Event::Lagged { id: 9, frames: 1 })
            .event(Event::Left(9));
        assert_eq!(s.poll(), Action::Idle);
    }

    #[test]
    fn one_encode_at_a_time() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(matches!(s.poll(), Action::Encode { .. }));
        s.at_ms(100).damage().event(Event::KeyframeRequested);
        assert_eq!(s.poll(), Action::Idle);
        s.event(Event::Encoded(Outcome::Published { keyframe: true }));
        assert!(matches!(s.poll(), Action::Encode { .. }));
    }

    #[test]
    fn a_published_stream_asks_its_producer_for_keyframes() {
        let mut s = Sim::new();
        assert!(!s.core.keyframe_due(s.now));
        s.event(Event::Joined(1));
        assert!(s.core.keyframe_due(s.now));
        s.event(Event::Encoded(Outcome::Published { keyframe: true }));
        assert!(!s.core.keyframe_due(s.now), "in flight");
        s.event(Event::Resumed(1));
        s.at_ms(100).event(Event::KeyframeRequested);
        assert!(!s.core.keyframe_due(s.now), "requests wait their turn");
        s.at_ms(300);
        assert!(s.core.keyframe_due(s.now));
    }

    /// A core that refines after 150 ms of stillness, a subscriber served
    /// (its keyframe at 0 ms was a moving picture).
    fn refreshing() -> Sim {
        let mut s = Sim::new();
        s.core = PipelineCore::new(Duration::from_millis(12))
            .with_refresh(Some(Duration::from_millis(150)));
        s.event(Event::Joined(1)).damage();
        assert!(matches!(s.poll(), Action::Encode { still: false, .. }));
        s.event(Event::Encoded(Outcome::Published { keyframe: true }));
        s.event(Event::Resumed(1));
        s
    }

    /// Polls, expects a refinement, and finishes it with `outcome`.
    fn refine(s: &mut Sim, outcome: Outcome) {
        assert_eq!(s.poll(), Action::Refine, "at {:?}", s.now - s.t0);
        s.event(Event::Encoded(outcome));
    }

    #[test]
    fn a_still_picture_is_refined_once_after_the_delay() {
        let mut s = refreshing();
        // The keyframe at 0 ms is refined at 150 ms, and not before.
        assert_eq!(s.poll(), Action::WaitUntil(s.at(150)));
        s.at_ms(149);
        assert_eq!(s.poll(), Action::WaitUntil(s.at(150)));
        s.at_ms(150);
        refine(&mut s, Outcome::Published { keyframe: false });
        // Sharp now: nothing more, and no timer, however long it stays still.
        assert_eq!(s.poll(), Action::Idle);
        assert_eq!(s.at_ms(60_000).poll(), Action::Idle);
    }

    #[test]
    fn motion_postpones_the_refinement_until_it_stops() {
        let mut s = refreshing();
        // A drag: damage every 16 ms for half a second.
        for ms in (16..=500).step_by(16) {
            s.at_ms(ms).damage();
            match s.poll() {
                Action::Encode { .. } => {
                    s.event(Event::Encoded(Outcome::Published { keyframe: false }));
                }
                other => panic!("at {ms} ms: {other:?}"),
            }
        }
        // The last encode was at 496 ms: the refinement comes 150 ms later.
        s.at_ms(600);
        assert_eq!(s.poll(), Action::WaitUntil(s.at(646)));
        s.at_ms(646);
        refine(&mut s, Outcome::Published { keyframe: false });
        // New motion makes the picture coarse again: one more refinement.
        s.at_ms(1_000).damage();
        assert!(!s.encode());
        s.at_ms(1_150);
        refine(&mut s, Outcome::Published { keyframe: false });
        assert_eq!(s.at_ms(5_000).poll(), Action::Idle);
    }

    #[test]
    fn a_refinement_that_fails_or_has_nothing_is_not_retried() {
        let mut s = refreshing();
        s.at_ms(150);
        refine(&mut s, Outcome::Unchanged);
        assert_eq!(s.at_ms(1_000).poll(), Action::Idle);
        s.at_ms(2_000).damage();
        assert!(!s.encode());
        s.at_ms(2_150);
        refine(&mut s, Outcome::Failed);
        // The encoder's state is unknown: the next picture is a keyframe.
        assert_eq!(s.at_ms(3_000).poll(), Action::Idle);
        s.damage();
        assert!(s.encode());
    }

    #[test]
    fn without_a_refresh_delay_or_subscribers_nothing_is_refined() {
        let mut s = Sim::new();
        s.damage().event(Event::Joined(1));
        assert!(s.encode());
        s.event(Event::Resumed(1));
        assert_eq!(s.at_ms(10_000).poll(), Action::Idle);
        let mut s = refreshing();
        s.event(Event::Left(1));
        assert_eq!(s.at_ms(10_000).poll(), Action::Idle);
    }

    #[test]
    fn a_still_screens_keyframe_is_coded_still_and_not_refined() {
        let mut s = refreshing();
        s.at_ms(100).damage();
        assert!(matches!(s.poll(), Action::Encode { still: false, .. }));
        s.event(Event::Encoded(Outcome::Published { keyframe: false }));
        // A viewer joins on the still screen, before the refinement was due:
        // its keyframe is coded still, which is sharp for everyone.
        s.at_ms(200).event(Event::Joined(2));
        assert!(matches!(
            s.poll(),
            Action::Encode {
                force_keyframe: true,
                still: true,
                ..
            }
        ));
        s.event(Event::Encoded(Outcome::Published { keyframe: true }));
        s.event(Event::Resumed(2));
        assert_eq!(s.at_ms(10_000).poll(), Action::Idle, "nothing to refine");
        // A keyframe during motion is a moving picture: refined after.
        s.at_ms(10_100).damage().event(Event::KeyframeRequested);
        assert!(matches!(
            s.poll(),
            Action::Encode {
                force_keyframe: true,
                still: false,
                ..
            }
        ));
        s.event(Event::Encoded(Outcome::Published { keyframe: true }));
        s.at_ms(10_250);
        refine(&mut s, Outcome::Published { keyframe: false });
    }
}
