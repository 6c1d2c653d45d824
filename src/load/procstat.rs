//! A server process's resources, read from `/proc/PID/status`,
//! `/proc/PID/stat` and its threads' `/proc/PID/task/TID/status`.

use std::fs;

use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Resident memory (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Threads (`Threads`).
    pub threads: u64,
    /// User plus system CPU time (`utime + stime` from `stat`), seconds.
    pub cpu_sec: f64,
    /// Voluntary context switches, summed over the threads (the
    /// process-level `status` counts only its main thread).
    pub voluntary_context_switches: u64,
    /// Involuntary context switches, summed over the threads.
    pub involuntary_context_switches: u64,
}

/// Reads process `pid` now; `None` if it is gone.
pub fn sample(pid: u32) -> Option<Sample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (voluntary, involuntary) = context_switches(pid);
    Some(Sample {
        rss_kib: field(&status, "VmRSS:").unwrap_or(0),
        threads: field(&status, "Threads:").unwrap_or(0),
        cpu_sec: cpu_seconds(&stat).unwrap_or(0.0),
        voluntary_context_switches: voluntary,
        involuntary_context_switches: involuntary,
    })
}

/// The number after `name` in a `status` file.
fn field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// `utime + stime` in seconds from a `stat` line. The command name (field
/// 2) may hold spaces and parentheses, so fields are counted after the
/// last `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are
    // at indexes 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf takes no pointers.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// Context switches summed over every thread of `pid`.
fn context_switches(pid: u32) -> (u64, u64) {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let mut sums = (0, 0);
    for task in tasks.flatten() {
        if let Ok(status) = fs::read_to_string(task.path().join("status")) {
            sums.0 += field(&status, "voluntary_ctxt_switches:").unwrap_or(0);
            sums.1 += field(&status, "nonvoluntary_ctxt_switches:").unwrap_or(0);
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status =
            "Name:\tspindle\nVmRSS:\t   12345 kB\nThreads:\t7\nvoluntary_ctxt_switches:\t9\n";
        assert_eq!(field(status, "VmRSS:"), Some(12345));
        assert_eq!(field(status, "Threads:"), Some(7));
        assert_eq!(field(status, "Missing:"), None);
        let ticks = clock_ticks();
        let stat = format!(
            "42 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 {} {} 0 0",
            ticks as u64 * 3,
            ticks as u64
        );
        assert_eq!(cpu_seconds(&stat), Some(4.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).expect("our own /proc entry");
        assert!(s.rss_kib > 0 && s.threads >= 1, "{s:?}");
        assert!(
            s.voluntary_context_switches + s.involuntary_context_switches > 0,
            "{s:?}"
        );
        assert!(sample(u32::MAX).is_none());
    }
}
