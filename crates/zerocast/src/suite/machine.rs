//! What the suite ran on, for its report: figures from another machine,
//! another QEMU or another accelerator do not compare.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Serialize, Debug)]
pub(super) struct Machine {
    /// /proc/cpuinfo's model name (empty if it has none).
    pub(super) cpu: String,
    /// CPUs this process may run on.
    pub(super) cores: usize,
    /// The accelerator the VM modes' guests ran under (`tcg` or `kvm`);
    /// absent when no VM mode ran.
    pub(super) accel: Option<String>,
    /// The first line of `qemu-system-x86_64 --version`, if it answered.
    pub(super) qemu: Option<String>,
    /// The host kernel's release (`uname -r`).
    pub(super) kernel: Option<String>,
    /// When the suite ended, UTC, ISO 8601.
    pub(super) date: String,
}

impl Machine {
    pub(super) fn describe(accel: Option<String>) -> Machine {
        Machine {
            cpu: cpu_model().unwrap_or_default(),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            accel,
            qemu: qemu_version(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|r| r.trim().to_owned()),
            date: utc_now(),
        }
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

fn qemu_version() -> Option<String> {
    let out = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?.trim();
    (out.status.success() && !first.is_empty()).then(|| first.to_owned())
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    iso8601(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic
/// Gregorian: Howard Hinnant's days-to-civil).
fn iso8601(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days from 0000-03-01, so that a leap day ends its year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        // A leap day, and the day after.
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(iso8601(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(iso8601(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn this_machine() {
        let m = Machine::describe(Some("tcg".into()));
        assert!(m.cores >= 1);
        assert!(m.kernel.is_some_and(|k| !k.is_empty()));
        assert!(m.date.starts_with("20"), "{}", m.date);
    }
}
