//! Latency histograms: every sample recorded (no sampling) in an HDR
//! histogram, in nanoseconds, summarised in microseconds.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency a histogram holds: one hour. Longer samples are
/// clamped to it (a run is never that long).
pub const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// Significant decimal digits kept per sample: 3 means 0.1% resolution.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A histogram of latencies in nanoseconds.
#[derive(Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram (1 ns to one hour, 3 significant digits).
    pub fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts; this cannot fail.
        let histogram = Histogram::new_with_bounds(1, MAX_LATENCY_NS, SIGNIFICANT_DIGITS)
            .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"));
        Latency { histogram }
    }

    /// Records one sample of `ns` nanoseconds (0 counts as 1 ns; beyond
    /// [`MAX_LATENCY_NS`] as the maximum).
    pub fn record(&mut self, ns: u64) {
        self.histogram.saturating_record(ns.max(1));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail; saturate anyway.
        for v in other.histogram.iter_recorded() {
            let _ = self
                .histogram
                .record_n(v.value_iterated_to(), v.count_at_value());
        }
    }

    /// The histogram itself (nanoseconds), for HdrHistogram's files.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// A latency histogram from another run's (`spindle load merge`),
    /// with this module's bounds whatever the other's were.
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        let mut l = Latency::new();
        for v in h.iter_recorded() {
            let _ = l.histogram.record_n(
                v.value_iterated_to().min(MAX_LATENCY_NS),
                v.count_at_value(),
            );
        }
        l
    }

    /// How many samples.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The summary, in microseconds.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.histogram;
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        let q = |p: f64| us(h.value_at_quantile(p));
        LatencySummary {
            count: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1000.0,
            stdev: h.stdev() / 1000.0,
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p99_9: q(0.999),
            p99_99: q(0.9999),
            max: us(h.max()),
        }
    }
}

/// Percentiles of a [`Latency`], every value in microseconds (the JSON
/// report names the unit on the enclosing field, e.g. `latency_us`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded (a count, not microseconds).
    pub count: u64,
    /// Smallest sample.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99.99th percentile.
    pub p99_99: f64,
    /// Largest sample.
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b.abs() * 0.001 + 0.001
    }

    #[test]
    fn uniform_samples_give_their_percentiles() {
        let mut l = Latency::new();
        // 1..=10_000 microseconds, once each.
        for us in 1..=10_000u64 {
            l.record(us * 1000);
        }
        let s = l.summary();
        assert_eq!(s.count, 10_000);
        assert!(close(s.min, 1.0), "{s:?}");
        assert!(close(s.p50, 5000.0), "{s:?}");
        assert!(close(s.p90, 9000.0), "{s:?}");
        assert!(close(s.p99, 9900.0), "{s:?}");
        assert!(close(s.p99_9, 9990.0), "{s:?}");
        assert!(close(s.p99_99, 9999.0), "{s:?}");
        assert!(close(s.max, 10_000.0), "{s:?}");
        assert!(close(s.mean, 5000.5), "{s:?}");
    }

    #[test]
    fn a_rare_stall_shows_in_the_tail_only() {
        let mut l = Latency::new();
        for _ in 0..9_999 {
            l.record(100_000); // 100 us
        }
        l.record(2_000_000_000); // one 2 s stall
        let s = l.summary();
        assert!(
            close(s.p50, 100.0) && close(s.p99, 100.0) && close(s.p99_9, 100.0),
            "{s:?}"
        );
        assert!(close(s.p99_99, 100.0), "{s:?}");
        assert!(close(s.max, 2_000_000.0), "{s:?}");
    }

    #[test]
    fn merge_adds_counts_and_extremes() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        a.record(1_000);
        b.record(3_000);
        b.record(0); // clamped to 1 ns
        b.record(u64::MAX); // clamped to the maximum
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 4);
        assert!(close(s.min, 0.001), "{s:?}");
        assert!(s.max >= MAX_LATENCY_NS as f64 / 1000.0 * 0.999, "{s:?}");
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Latency::new().summary(), LatencySummary::default());
    }
}
