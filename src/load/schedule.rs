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

/// Requests per second across all connections, and how they are spread:
/// one constant rate, or a plan of constant-rate steps (`--rate A..B
/// --steps N`), each step a segment of the schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    connections: usize,
    segments: Vec<Segment>,
}

/// One constant-rate stretch: global slot `first_k` falls at `start`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: Instant,
    rate_per_sec: f64,
    first_k: u64,
}

impl Schedule {
    /// `rate_per_sec` requests/s over `connections` connections from `start`.
    /// `rate_per_sec` must be positive and `connections` at least 1.
    pub fn new(start: Instant, rate_per_sec: f64, connections: usize) -> Self {
        Schedule {
            connections: connections.max(1),
            segments: vec![Segment {
                start,
                rate_per_sec: rate_per_sec.max(f64::MIN_POSITIVE),
                first_k: 0,
            }],
        }
    }

    /// Steps: `rates[0]` from `start` until `steps_from + step`, then each
    /// next rate for one `step` (the last one on to the end).
    pub fn steps(
        start: Instant,
        steps_from: Instant,
        step: Duration,
        rates: &[f64],
        connections: usize,
    ) -> Self {
        let mut s = Schedule::new(start, rates.first().copied().unwrap_or(1.0), connections);
        for (i, &rate) in rates.iter().enumerate().skip(1) {
            let at = steps_from + step * i as u32;
            let last = *s.segments.last().unwrap_or(&s.segments[0]);
            let span = at.saturating_duration_since(last.start).as_secs_f64();
            // The first slot at or after `at` in the previous segment.
            let k = last.first_k + (span * last.rate_per_sec - 1e-9).ceil().max(0.0) as u64;
            s.segments.push(Segment {
                start: at,
                rate_per_sec: rate.max(f64::MIN_POSITIVE),
                first_k: k,
            });
        }
        s
    }

    fn segment_of_k(&self, k: u64) -> (usize, &Segment) {
        let i = self
            .segments
            .partition_point(|s| s.first_k <= k)
            .saturating_sub(1);
        (i, &self.segments[i])
    }

    fn segment_at(&self, t: Instant) -> &Segment {
        let i = self
            .segments
            .partition_point(|s| s.start <= t)
            .saturating_sub(1);
        &self.segments[i]
    }

    /// When connection `conn` should send its `nth` request (both from 0).
    pub fn intended(&self, conn: usize, nth: u64) -> Instant {
        let k = nth
            .saturating_mul(self.connections as u64)
            .saturating_add(conn as u64);
        let (_, seg) = self.segment_of_k(k);
        seg.start + secs((k - seg.first_k) as f64 / seg.rate_per_sec)
    }

    /// Which step (segment) connection `conn`'s `nth` request belongs to.
    pub fn step_of(&self, conn: usize, nth: u64) -> usize {
        let k = nth
            .saturating_mul(self.connections as u64)
            .saturating_add(conn as u64);
        self.segment_of_k(k).0
    }

    /// The time between two requests of one connection (the first step's).
    pub fn interval(&self) -> Duration {
        secs(self.connections as f64 / self.segments[0].rate_per_sec)
    }

    /// The first request number of `conn` intended at or after `t`, so that
    /// a connection (re)opened late skips the slots it could not have used
    /// instead of bursting to catch up.
    pub fn first_at_or_after(&self, conn: usize, t: Instant) -> u64 {
        let seg = self.segment_at(t);
        let elapsed = t.saturating_duration_since(seg.start).as_secs_f64();
        // The epsilon keeps float noise from skipping a slot we are exactly on.
        let k_t = seg.first_k as f64 + (elapsed * seg.rate_per_sec - 1e-9).ceil().max(0.0);
        let k = k_t - conn as f64;
        if k <= 0.0 {
            return 0;
        }
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
    fn steps_change_the_rate_at_their_boundaries() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // 100/s over 1 connection until 1 s, then 1000/s, then 10/s.
        let s = Schedule::steps(t0, t0, ms(1000), &[100.0, 1000.0, 10.0], 1);
        assert!((s.intended(0, 99) - t0).abs_diff(ms(990)) < Duration::from_micros(1));
        assert!((s.intended(0, 100) - t0).abs_diff(ms(1000)) < Duration::from_micros(1));
        assert!((s.intended(0, 101) - t0).abs_diff(ms(1001)) < Duration::from_micros(1));
        assert!((s.intended(0, 1100) - t0).abs_diff(ms(2000)) < Duration::from_micros(1));
        assert!((s.intended(0, 1101) - t0).abs_diff(ms(2100)) < Duration::from_micros(1));
        assert_eq!(s.step_of(0, 99), 0);
        assert_eq!(s.step_of(0, 100), 1);
        assert_eq!(s.step_of(0, 1100), 2);
        assert_eq!(s.first_at_or_after(0, t0 + ms(1000)), 100);
        assert_eq!(s.first_at_or_after(0, t0 + ms(2000)), 1100);
        assert_eq!(s.first_at_or_after(0, t0 + ms(2050)), 1101);
        // Slots per step, as the report counts them.
        assert_eq!(
            s.first_at_or_after(0, t0 + ms(2000)) - s.first_at_or_after(0, t0 + ms(1000)),
            1000
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
