//! When each request is meant to leave, in open-loop mode (`--rate`), and
//! when each connection is opened (`--connect-rate`).
//!
//! Open loop: request `k` of the whole run goes to connection `k mod C` at
//! `start + k / R`. Connection `i` therefore sends its `j`-th request at
//! `start + (j·C + i) / R`: every connection at `R / C` requests/s, the
//! connections staggered evenly. Latency is measured from that *intended*
//! time, not from when the request actually left: when the server stalls,
//! the requests that should have gone out meanwhile count the stall too
//! (coordinated omission, as Gil Tene named it and wrk2 corrects it).

use std::time::{Duration, Instant};

/// Requests per second across all connections, and how they are spread.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    rate_per_sec: f64,
    connections: usize,
}

impl Schedule {
    /// `rate_per_sec` requests/s over `connections` connections from `start`.
    /// `rate_per_sec` must be positive and `connections` at least 1.
    pub fn new(start: Instant, rate_per_sec: f64, connections: usize) -> Self {
        Schedule {
            start,
            rate_per_sec: rate_per_sec.max(f64::MIN_POSITIVE),
            connections: connections.max(1),
        }
    }

    /// When connection `conn` should send its `nth` request (both from 0).
    pub fn intended(&self, conn: usize, nth: u64) -> Instant {
        let k = nth as f64 * self.connections as f64 + conn as f64;
        self.start + secs(k / self.rate_per_sec)
    }

    /// The time between two requests of one connection.
    pub fn interval(&self) -> Duration {
        secs(self.connections as f64 / self.rate_per_sec)
    }

    /// The first request number of `conn` intended at or after `t`, so that
    /// a connection (re)opened late skips the slots it could not have used
    /// instead of bursting to catch up.
    pub fn first_at_or_after(&self, conn: usize, t: Instant) -> u64 {
        let elapsed = t.saturating_duration_since(self.start).as_secs_f64();
        let k = elapsed * self.rate_per_sec - conn as f64;
        if k <= 0.0 {
            return 0;
        }
        // The epsilon keeps float noise from skipping a slot we are exactly on.
        (k / self.connections as f64 - 1e-9).ceil() as u64
    }
}

/// When connection `i` is opened: `start + i / rate` (`rate` connections/s;
/// `None`: all at once).
pub fn connect_time(start: Instant, i: usize, rate_per_sec: Option<f64>) -> Instant {
    match rate_per_sec {
        Some(r) if r > 0.0 => start + secs(i as f64 / r),
        _ => start,
    }
}

fn secs(s: f64) -> Duration {
    // Clamp: a silly rate must not panic Duration::from_secs_f64.
    Duration::from_secs_f64(s.clamp(0.0, 1e9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spread_evenly_over_connections() {
        let t0 = Instant::now();
        // 1000 requests/s over 4 connections: one every ms overall,
        // each connection every 4 ms, connection i offset by i ms.
        let s = Schedule::new(t0, 1000.0, 4);
        assert_eq!(s.interval(), Duration::from_millis(4));
        let mut all: Vec<Duration> = Vec::new();
        for conn in 0..4 {
            for nth in 0..5 {
                all.push(s.intended(conn, nth) - t0);
            }
        }
        all.sort();
        for (k, d) in all.iter().enumerate() {
            let want = Duration::from_millis(k as u64);
            let diff = d.abs_diff(want);
            assert!(
                diff < Duration::from_micros(1),
                "request {k}: {d:?} vs {want:?}"
            );
        }
        assert!(
            (s.intended(2, 3) - t0).abs_diff(Duration::from_millis(14)) < Duration::from_micros(1)
        );
    }

    #[test]
    fn a_late_connection_skips_missed_slots() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 100.0, 2); // each connection every 20 ms
        assert_eq!(s.first_at_or_after(0, t0), 0);
        assert_eq!(s.first_at_or_after(1, t0), 0);
        // Connection 1's slots: 10, 30, 50 ms... At 31 ms the next is 50 ms (nth 2).
        let n = s.first_at_or_after(1, t0 + Duration::from_millis(31));
        assert_eq!(n, 2);
        assert!(s.intended(1, n) >= t0 + Duration::from_millis(31));
        assert!(s.intended(1, n - 1) < t0 + Duration::from_millis(31));
        // Exactly on a slot keeps that slot.
        assert_eq!(s.first_at_or_after(0, t0 + Duration::from_millis(40)), 2);
    }

    #[test]
    fn connection_ramp() {
        let t0 = Instant::now();
        assert_eq!(connect_time(t0, 5, None), t0);
        assert_eq!(connect_time(t0, 5, Some(0.0)), t0);
        assert_eq!(
            connect_time(t0, 500, Some(1000.0)) - t0,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn extreme_rates_do_not_panic() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 1e-300, 1);
        let _ = s.intended(0, u64::MAX);
        let s = Schedule::new(t0, 0.0, 0);
        let _ = s.interval();
    }
}
