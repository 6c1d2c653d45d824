//! The run cut into intervals (`--interval`, 1 s by default): per interval
//! the requests that completed or failed, the errors by kind, and the
//! latency of the completed ones (corrected in open loop), so that a stall
//! shows as the interval where it happened.
//!
//! Everything is placed by when it happened (a response by its arrival,
//! an error when it struck), as HdrHistogram's interval logs do; an answer
//! that arrives in the drain after the run's end counts in the last
//! interval. Each interval's histogram keeps two significant digits (1%):
//! a run holds up to [`MAX_INTERVALS`] of them per thread, and three digits
//! would cost five times the memory.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::errors::ErrorKind;
use super::latency::MAX_LATENCY_NS;

/// The most intervals a run may have (an hour of 1 s intervals); a longer
/// run needs a longer `--interval`.
pub const MAX_INTERVALS: u64 = 3600;

/// The default interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Significant digits of an interval's histogram.
pub const INTERVAL_SIGNIFICANT_DIGITS: u8 = 2;

/// What happened in one interval.
#[derive(Clone)]
pub struct Bucket {
    /// Latency of the requests completed in it, in nanoseconds.
    pub latency: Histogram<u32>,
    /// Requests completed.
    pub completed: u64,
    /// Requests failed.
    pub failed: u64,
    /// Errors by kind (connection errors included).
    pub errors: BTreeMap<ErrorKind, u64>,
}

impl Bucket {
    /// An empty interval.
    pub fn new() -> Bucket {
        let latency = Histogram::new_with_bounds(1, MAX_LATENCY_NS, INTERVAL_SIGNIFICANT_DIGITS)
            .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"));
        Bucket {
            latency,
            completed: 0,
            failed: 0,
            errors: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: &Bucket) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.completed += other.completed;
        self.failed += other.failed;
        for (k, n) in &other.errors {
            *self.errors.entry(*k).or_default() += n;
        }
    }
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket::new()
    }
}

/// The intervals of one thread (or, merged, of the run).
#[derive(Clone, Default)]
pub struct Timeline {
    from: Option<Instant>,
    interval: Duration,
    buckets: Vec<Option<Box<Bucket>>>,
}

impl Timeline {
    /// `count` intervals of `interval` from `from` (the end of the warmup).
    pub fn new(from: Instant, interval: Duration, count: u64) -> Timeline {
        let count = count.min(MAX_INTERVALS) as usize;
        Timeline {
            from: Some(from),
            interval: interval.max(Duration::from_nanos(1)),
            buckets: vec![None; count],
        }
    }

    /// How many intervals a run of `duration` cut every `interval` has.
    pub fn intervals_in(duration: Duration, interval: Duration) -> u64 {
        let iv = interval.as_nanos().max(1);
        duration.as_nanos().div_ceil(iv) as u64
    }

    /// The interval's length.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Cuts the timeline short at `len` intervals (an interrupted run).
    pub fn truncate(&mut self, len: usize) {
        self.buckets.truncate(len.max(1));
    }

    fn bucket(&mut self, at: Instant) -> Option<&mut Bucket> {
        let from = self.from?;
        if at < from || self.buckets.is_empty() {
            return None;
        }
        let i = ((at - from).as_nanos() / self.interval.as_nanos().max(1)) as usize;
        let i = i.min(self.buckets.len() - 1);
        Some(self.buckets[i].get_or_insert_with(|| Box::new(Bucket::new())))
    }

    /// A request completed at `at` after `latency_ns`.
    pub fn completed(&mut self, at: Instant, latency_ns: u64) {
        if let Some(b) = self.bucket(at) {
            b.completed += 1;
            b.latency.saturating_record(latency_ns.max(1));
        }
    }

    /// A request failed at `at`.
    pub fn failed(&mut self, at: Instant) {
        if let Some(b) = self.bucket(at) {
            b.failed += 1;
        }
    }

    /// An error of `kind` at `at`.
    pub fn error(&mut self, at: Instant, kind: ErrorKind) {
        if let Some(b) = self.bucket(at) {
            *b.errors.entry(kind).or_default() += 1;
        }
    }

    /// A timeline of `interval`s put together from other runs' intervals
    /// (`spindle load merge`; see [`Timeline::place`]).
    pub fn assembled(interval: Duration) -> Timeline {
        Timeline {
            from: None,
            interval: interval.max(Duration::from_nanos(1)),
            buckets: Vec::new(),
        }
    }

    /// Adds `bucket` into interval `index`. `Err` past [`MAX_INTERVALS`].
    pub fn place(&mut self, index: usize, bucket: &Bucket) -> Result<(), String> {
        if index as u64 >= MAX_INTERVALS {
            return Err(format!(
                "the runs span more than {MAX_INTERVALS} intervals of {:?}",
                self.interval
            ));
        }
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, None);
        }
        match &mut self.buckets[index] {
            Some(b) => b.merge(bucket),
            slot => *slot = Some(Box::new(bucket.clone())),
        }
        Ok(())
    }

    /// The intervals' histograms, in order (an empty one for a quiet
    /// interval).
    pub fn buckets(&self) -> impl Iterator<Item = Option<&Bucket>> {
        self.buckets.iter().map(|b| b.as_deref())
    }

    /// Adds `other` (same intervals) into `self`.
    pub fn merge(&mut self, other: &Timeline) {
        if self.from.is_none() && self.buckets.is_empty() {
            *self = other.clone();
            return;
        }
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), None);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            if let Some(t) = theirs {
                match mine {
                    Some(m) => m.merge(t),
                    None => *mine = Some(t.clone()),
                }
            }
        }
    }

    /// Every interval in order: its start from the end of the warmup, its
    /// length, and what happened (an empty bucket for a quiet interval).
    pub fn intervals(&self) -> Vec<(Duration, Duration, Bucket)> {
        self.buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let start = self.interval * i as u32;
                let bucket = b.as_deref().cloned().unwrap_or_else(Bucket::new);
                (start, self.interval, bucket)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_land_in_their_interval_and_merge() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut a = Timeline::new(t0, s, 3);
        a.completed(t0 + Duration::from_millis(100), 1_000_000);
        a.completed(t0 + Duration::from_millis(2500), 5_000_000);
        a.failed(t0 + Duration::from_millis(1500));
        a.error(t0 + Duration::from_millis(1500), ErrorKind::Timeout);
        // At the window's start: the first interval; before it: nowhere;
        // after its end (the drain): the last interval.
        a.completed(t0, 1);
        if let Some(before) = t0.checked_sub(Duration::from_millis(1)) {
            a.completed(before, 1);
        }
        a.completed(t0 + Duration::from_secs(9), 2_000_000);
        let mut b = Timeline::new(t0, s, 3);
        b.completed(t0 + Duration::from_millis(200), 3_000_000);
        a.merge(&b);
        let iv = a.intervals();
        assert_eq!(iv.len(), 3);
        assert_eq!(iv[0].2.completed, 3); // 100 ms, 200 ms and the t0 sample
        assert_eq!(iv[1].2.completed, 0);
        assert_eq!(iv[1].2.failed, 1);
        assert_eq!(iv[1].2.errors.get(&ErrorKind::Timeout), Some(&1));
        assert_eq!(iv[2].2.completed, 2);
        assert_eq!(iv[2].1, s);
        assert_eq!(iv[2].0, Duration::from_secs(2));
        let max = iv[2].2.latency.max();
        assert!((4_900_000..=5_100_000).contains(&max), "{max}");
    }

    #[test]
    fn interval_counts() {
        let s = Duration::from_secs(1);
        assert_eq!(Timeline::intervals_in(Duration::from_secs(10), s), 10);
        assert_eq!(Timeline::intervals_in(Duration::from_millis(10_500), s), 11);
        assert_eq!(Timeline::intervals_in(Duration::from_millis(300), s), 1);
    }
}
