//! A server's resources, read from `/proc/PID/status`, `/proc/PID/stat`
//! and its threads' `/proc/PID/task/TID/status` — summed over the server
//! and every process it started, so that a process-per-connection server
//! is counted whole.

use std::fs;

use serde::Serialize;

/// One reading of a process and its descendants, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Resident memory (`VmRSS`), KiB. Summed over processes, so pages
    /// they share (the binary, libraries) count once per process.
    pub rss_kib: u64,
    /// Threads (`Threads`).
    pub threads: u64,
    /// Processes: the server and its descendants.
    pub processes: u64,
    /// User plus system CPU time (`utime + stime` from `stat`), seconds.
    pub cpu_sec: f64,
    /// Voluntary context switches, summed over the threads (the
    /// process-level `status` counts only its main thread).
    pub voluntary_context_switches: u64,
    /// Involuntary context switches, summed over the threads.
    pub involuntary_context_switches: u64,
}

/// The most processes one sample visits: bounds the walk of the tree.
pub const MAX_PROCESSES: usize = 100_000;

/// Reads process `pid` and every live descendant now; `None` if `pid` is
/// gone. A descendant that exits during the walk is skipped.
///
/// Counters of threads and processes that have already exited are gone
/// with them: a sample covers what is alive when it is taken, so compare
/// two samples only across a span in which the work's threads and
/// processes live (a measured window with its connections open).
pub fn sample(pid: u32) -> Option<Sample> {
    let mut total = sample_one(pid)?;
    let mut pending = children(pid);
    let mut visited = 1;
    while let Some(child) = pending.pop() {
        if visited >= MAX_PROCESSES {
            break;
        }
        visited += 1;
        if let Some(s) = sample_one(child) {
            total.rss_kib += s.rss_kib;
            total.threads += s.threads;
            total.processes += 1;
            total.cpu_sec += s.cpu_sec;
            total.voluntary_context_switches += s.voluntary_context_switches;
            total.involuntary_context_switches += s.involuntary_context_switches;
            pending.extend(children(child));
        }
    }
    Some(total)
}

/// One process alone.
fn sample_one(pid: u32) -> Option<Sample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (voluntary, involuntary) = context_switches(pid);
    Some(Sample {
        rss_kib: field(&status, "VmRSS:").unwrap_or(0),
        threads: field(&status, "Threads:").unwrap_or(0),
        processes: 1,
        cpu_sec: cpu_seconds(&stat).unwrap_or(0.0),
        voluntary_context_switches: voluntary,
        involuntary_context_switches: involuntary,
    })
}

/// The children of every thread of `pid` (a child is listed under the
/// thread that started it).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut all = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = fs::read_to_string(task.path().join("children")) {
            all.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    all
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

    #[test]
    fn finds_child_processes() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep starts");
        let found = children(std::process::id()).contains(&child.id());
        let tree = sample(std::process::id()).expect("our own /proc entry");
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "sleep {} not among our children", child.id());
        // Other tests may start and end children meanwhile; ours was alive.
        assert!(tree.processes >= 2, "{tree:?}");
    }
}
