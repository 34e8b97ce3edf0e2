//! What this process costs, read from the kernel: CPU time, resident
//! memory, open file descriptors. For the benchmark and the soak.

use std::time::Duration;

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
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// File descriptors open now.
pub fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

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
