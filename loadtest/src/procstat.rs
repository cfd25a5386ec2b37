//! CPU time, peak memory and thread count of a process, from `/proc`.
//!
//! leadx's CPU per request is the delta of utime+stime over a run divided by
//! the requests in it; the buyer fleet and the driver report theirs the same
//! way so the reader can see who used the shared cores.

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` times. USER_HZ is 100 on
/// every Linux ABI this runs on (it is part of the kernel's user ABI).
pub const TICKS_PER_S: u64 = 100;

/// A snapshot of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct ProcSample {
    /// utime + stime, µs.
    pub cpu_us: u64,
    /// Peak resident set (VmHWM), KiB.
    pub rss_peak_kib: u64,
    pub threads: u64,
}

/// Parses utime+stime (µs) out of the text of `/proc/<pid>/stat`.
/// The command name (field 2) may contain spaces and parentheses, so fields
/// are counted after the last `)`.
pub fn parse_stat_cpu_us(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")" the first field is field 3 (state); utime is 14, stime 15.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) * (1_000_000 / TICKS_PER_S))
}

/// Reads a `Key:   value` number (first token) out of `/proc/<pid>/status`.
pub fn parse_status_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if k != key {
            return None;
        }
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Resident set now (VmRSS, KiB) of process `pid`; `None` when it is gone.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_field(&status, "VmRSS")
}

/// Samples process `pid` ("self" for this process). `None` when it is gone.
pub fn sample(pid: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu_us: parse_stat_cpu_us(&stat)?,
        rss_peak_kib: parse_status_field(&status, "VmHWM").unwrap_or(0),
        threads: parse_status_field(&status, "Threads").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_survives_a_command_name_with_spaces_and_parens() {
        let stat = "1234 (lead x) (w)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 12345 1000 200";
        assert_eq!(parse_stat_cpu_us(stat), Some((250 + 75) * 10_000));
        assert_eq!(parse_stat_cpu_us("garbage"), None);
    }

    #[test]
    fn status_fields_are_found_by_exact_key() {
        let status = "Name:\tleadx\nVmHWM:\t   20480 kB\nVmHWMx:\t1 kB\nThreads:\t5\n";
        assert_eq!(parse_status_field(status, "VmHWM"), Some(20480));
        assert_eq!(parse_status_field(status, "Threads"), Some(5));
        assert_eq!(parse_status_field(status, "VmRSS"), None);
    }

    #[test]
    fn own_process_can_be_sampled_and_cpu_grows_with_work() {
        let a = sample("self").expect("/proc/self readable");
        assert!(a.threads >= 1 && a.rss_peak_kib > 0);
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let b = sample("self").unwrap();
        assert!(b.cpu_us > a.cpu_us, "{a:?} -> {b:?}");
    }
}
