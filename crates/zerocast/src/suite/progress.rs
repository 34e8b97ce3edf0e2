//! The suite's progress bar: runs done out of all, which mode and repeat
//! runs now and what it is doing, and about how long is left. The time
//! left comes from the runs already done (a run's boot and warm-up are not
//! known before one has ended), so the first run shows none.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::Shown;
use crate::stream_bench::Phase;

const TEMPLATE: &str = "{spinner} {elapsed_precise} [{bar:24}] {pos}/{len} runs  {msg}";

pub(super) struct SuiteProgress {
    /// None with --quiet.
    shown: Option<Shown>,
    runs: u32,
    done: u32,
    /// Wall time of the runs done.
    spent: Duration,
    run_started: Instant,
    /// "scanout 2/3"
    run: String,
}

impl SuiteProgress {
    pub(super) fn new(runs: u32, quiet: bool) -> anyhow::Result<SuiteProgress> {
        let shown = match quiet {
            true => None,
            false => {
                let style = ProgressStyle::with_template(TEMPLATE)?.progress_chars("=> ");
                let bar = ProgressBar::new(u64::from(runs)).with_style(style);
                bar.enable_steady_tick(Duration::from_millis(250));
                Some(Shown::new(bar))
            }
        };
        Ok(SuiteProgress {
            shown,
            runs,
            done: 0,
            spent: Duration::ZERO,
            run_started: Instant::now(),
            run: String::new(),
        })
    }

    pub(super) fn start_run(&mut self, mode: &str, repeat: u32, repeats: u32) {
        self.run = format!("{mode} {repeat}/{repeats}");
        self.run_started = Instant::now();
        tracing::info!("suite: {} starts", self.run);
    }

    pub(super) fn phase(&self, phase: Phase) {
        let Some(shown) = &self.shown else { return };
        let doing = match phase {
            Phase::Starting => "starting".to_owned(),
            Phase::WarmingUp => "warming up".to_owned(),
            Phase::Measuring { done, window } => format!(
                "measuring {:.0}/{:.0} s",
                done.as_secs_f64(),
                window.as_secs_f64()
            ),
            Phase::Quality => "decoding for PSNR/SSIM".to_owned(),
        };
        let left = time_left(self.spent, self.done, self.runs, self.run_started.elapsed())
            .map_or("time left known after the first run".to_owned(), |d| {
                format!("about {} left", minutes(d))
            });
        shown
            .bar()
            .set_message(format!("{}: {doing}; {left}", self.run));
    }

    pub(super) fn end_run(&mut self) {
        self.done += 1;
        self.spent += self.run_started.elapsed();
        if let Some(shown) = &self.shown {
            shown.bar().inc(1);
        }
    }
}

/// The runs left at the mean wall time of those done, less what the
/// current run has already taken; None before any run has ended.
fn time_left(spent: Duration, done: u32, runs: u32, current: Duration) -> Option<Duration> {
    let per_run = spent.checked_div(done)?;
    Some((per_run * runs.saturating_sub(done)).saturating_sub(current))
}

fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m {:02}s", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_from_the_runs_done() {
        let s = Duration::from_secs;
        assert_eq!(time_left(s(0), 0, 4, s(5)), None);
        // Two runs of 30 s done, two to go, 10 s into the third.
        assert_eq!(time_left(s(60), 2, 4, s(10)), Some(s(50)));
        // A slow current run does not go below zero.
        assert_eq!(time_left(s(60), 2, 3, s(45)), Some(s(0)));
        assert_eq!(minutes(s(125)), "2m 05s");
    }
}
