//! This process's CPU time and memory, for the figures of the measuring tools.

use std::time::Duration;

/// CPU time of the process so far (user + system, all threads).
pub fn cpu_time() -> Duration {
    let (cpu, _) = rusage();
    cpu
}

/// Peak resident memory of the process so far, MiB.
pub fn peak_rss_mib() -> f64 {
    let (_, max_rss_kib) = rusage();
    max_rss_kib as f64 / 1024.0
}

/// Resident memory now, MiB (0 where `/proc` is unavailable).
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn rusage() -> (Duration, u64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_maxrss as u64)
}
