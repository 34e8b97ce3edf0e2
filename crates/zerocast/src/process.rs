//! What this process costs, read from the kernel: CPU time, resident
//! memory, open file descriptors. For the benchmark and the soak.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// CPU time (user + system) this process has used.
pub fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a pointer to a live, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    // getrusage never reports negative times; were it to, they count as 0.
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident memory in bytes (`VmRSS`), if /proc says.
pub fn rss_bytes() -> Option<u64> {
    Proc::me().status_bytes("VmRSS:")
}

/// A process as /proc shows it (this one, or another such as QEMU): CPU
/// time, its threads', and its peak resident memory.
pub struct Proc {
    dir: PathBuf,
}

impl Proc {
    pub fn me() -> Proc {
        Proc {
            dir: "/proc/self".into(),
        }
    }

    pub fn of(pid: u32) -> Proc {
        Proc {
            dir: format!("/proc/{pid}").into(),
        }
    }

    /// utime + stime of all its threads.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        stat_cpu(&self.dir.join("stat"))
    }

    /// utime + stime of its threads whose name (`comm`) `wanted` accepts.
    pub fn threads_cpu(&self, wanted: impl Fn(&str) -> bool) -> anyhow::Result<Duration> {
        let tasks = self.dir.join("task");
        let mut total = Duration::ZERO;
        for task in
            std::fs::read_dir(&tasks).with_context(|| format!("listing {}", tasks.display()))?
        {
            let task = task?.path();
            // A thread that ended since the listing counts for nothing.
            let Ok(name) = std::fs::read_to_string(task.join("comm")) else {
                continue;
            };
            if wanted(name.trim_end()) {
                total += stat_cpu(&task.join("stat")).unwrap_or_default();
            }
        }
        Ok(total)
    }

    /// `VmHWM`: the most resident memory it has had since it started, or
    /// since [`Proc::reset_peak_rss`].
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.status_bytes("VmHWM:")
    }

    /// Starts the peak resident memory over from the current (writing 5 to
    /// `clear_refs`, Linux 4.0 on; needs the right to ptrace it).
    pub fn reset_peak_rss(&self) -> std::io::Result<()> {
        std::fs::write(self.dir.join("clear_refs"), "5")
    }

    /// A `status` line's figure in kB, in bytes.
    fn status_bytes(&self, key: &str) -> Option<u64> {
        let status = std::fs::read_to_string(self.dir.join("status")).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(kib * 1024)
    }
}

/// utime + stime from a `stat` file of /proc.
fn stat_cpu(path: &Path) -> anyhow::Result<Duration> {
    let stat =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let ticks = stat_cpu_ticks(&stat).with_context(|| format!("parsing {stat:?}"))?;
    let per_second = ticks_per_second();
    let secs = ticks / per_second;
    let nanos = ticks % per_second * 1_000_000_000 / per_second;
    Ok(Duration::new(secs, u32::try_from(nanos).unwrap_or(0)))
}

/// The kernel's clock ticks per second, in which /proc gives CPU times.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// utime + stime in clock ticks from a `/proc/PID/stat` line. The command
/// name (field 2) may hold spaces and parentheses: count from the last `)`.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// File descriptors open now.
pub fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_proc_stat() {
        let line =
            "4242 (qemu-system) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1500 250 0 0 20 0 5 0";
        assert_eq!(stat_cpu_ticks(line), Some(1750));
        assert_eq!(stat_cpu_ticks("4242 (qemu"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(stat_cpu_ticks(&own).is_some());
    }

    #[test]
    fn a_process_by_pid() {
        const MIB: u64 = 1 << 20;
        let me = Proc::of(std::process::id());
        // 128 MiB touched and given back (an allocation that size is its
        // own mapping): the peak holds it, the current does not.
        drop(std::hint::black_box(vec![1u8; 128 << 20]));
        let peak = me.peak_rss_bytes().unwrap();
        assert!(peak >= 128 * MIB, "VmHWM {peak} after touching 128 MiB");
        me.reset_peak_rss().unwrap();
        // Other tests allocate meanwhile, but not the better part of 128 MiB.
        let after = me.peak_rss_bytes().unwrap();
        assert!(
            after + 64 * MIB < peak,
            "VmHWM {after} after a reset, was {peak}"
        );
        // Every thread of this process, by name, adds up to no more than the whole.
        let all = me.threads_cpu(|_| true).unwrap();
        assert!(all <= me.cpu().unwrap() + Duration::from_millis(50));
        assert_eq!(me.threads_cpu(|_| false).unwrap(), Duration::ZERO);
        assert!(Proc::of(u32::MAX).cpu().is_err(), "no such process");
    }

    #[test]
    fn the_kernel_answers() {
        assert!(rss_bytes().unwrap() > 0);
        // Other tests open and close files meanwhile: only a floor is certain.
        assert!(open_fds().unwrap() >= 3, "stdin, stdout, stderr at least");
        // The clock ticks coarsely: spin until it moves, for a bounded time.
        let t = cpu_time();
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        while cpu_time() <= t && std::time::Instant::now() < give_up {
            for i in 0..1_000_000u64 {
                x = x.wrapping_add(i * i);
            }
            std::hint::black_box(x);
        }
        assert!(cpu_time() > t, "CPU time moved while spinning");
    }
}
