//! Where access units go: appended to the `--output` file as a raw H.264
//! (Annex B) stream, counted, and reported on stdout every few frames.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::stats::{process_cpu, Stats};

const START_CODE: [u8; 4] = [0, 0, 0, 1];

pub struct Sink {
    out: Option<File>,
    stats: Stats,
    limit: u64,
}

impl Sink {
    /// `path` `-` writes nothing. Stops after `limit` frames (0 = never); a
    /// stats line every `report_every` frames.
    pub fn new(path: &Path, limit: u64, report_every: u64) -> Result<Sink> {
        let out = if path == Path::new("-") {
            None
        } else {
            Some(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        };
        Ok(Sink {
            out,
            stats: Stats::new(report_every, Instant::now(), process_cpu()),
            limit,
        })
    }

    /// Takes one access unit, as the NAL entries a FRAME_RESPONSE carried
    /// (usually one entry holding the whole Annex B access unit). Returns
    /// true once `--frames` frames have arrived.
    pub fn frame<E: AsRef<[u8]>>(
        &mut self,
        entries: &[E],
        keyframe: bool,
        latency: Duration,
    ) -> Result<bool> {
        let mut bytes = 0;
        for entry in entries {
            let entry = entry.as_ref();
            bytes += entry.len();
            if let Some(out) = &mut self.out {
                if !has_start_code(entry) {
                    out.write_all(&START_CODE).context("writing the output")?;
                }
                out.write_all(entry).context("writing the output")?;
            }
        }
        self.stats.record(bytes, keyframe, latency);
        if let Some(line) = self.stats.report(Instant::now(), process_cpu()) {
            println!("{line}");
        }
        Ok(self.limit != 0 && self.stats.frames() >= self.limit)
    }

    /// Prints the closing stats line.
    pub fn finish(self) {
        println!("{}", self.stats.summary(Instant::now(), process_cpu()));
    }
}

/// Whether an entry already starts with an Annex B start code (helix's
/// senders put whole Annex B access units in one entry; a bare NAL unit
/// needs one written before it).
fn has_start_code(entry: &[u8]) -> bool {
    entry.starts_with(&[0, 0, 1]) || entry.starts_with(&START_CODE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_codes() {
        assert!(has_start_code(&[0, 0, 0, 1, 0x67]));
        assert!(has_start_code(&[0, 0, 1, 0x65]));
        assert!(!has_start_code(&[0x67, 0x42]));
        assert!(!has_start_code(&[0, 0]));
    }

    #[test]
    fn writes_annex_b_and_stops_at_the_limit() {
        let path = std::env::temp_dir().join(format!("zerocast-guest-sink-{}", std::process::id()));
        let mut sink = Sink::new(&path, 2, 0).unwrap();
        let au = [0u8, 0, 0, 1, 0x65, 0xAA];
        assert!(!sink.frame(&[&au[..]], true, Duration::ZERO).unwrap());
        // Two bare NAL units: each gets a start code.
        assert!(sink
            .frame(
                &[&[0x41u8, 0x01][..], &[0x41, 0x02][..]],
                false,
                Duration::ZERO
            )
            .unwrap());
        sink.finish();
        let written = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            written,
            [0, 0, 0, 1, 0x65, 0xAA, 0, 0, 0, 1, 0x41, 0x01, 0, 0, 0, 1, 0x41, 0x02]
        );
    }
}
