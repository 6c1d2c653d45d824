//! What one event-loop thread measured; the threads' stats are merged into
//! one before the report is made.

use serde::Serialize;

use super::errors::ErrorTally;
use super::latency::Latency;
use super::timeline::Timeline;

/// Counts and histograms of one thread (or, merged, of the run).
#[derive(Clone, Default)]
pub struct Stats {
    /// Request latency; in open loop from the intended send time.
    pub latency: Latency,
    /// Open loop only: latency from the actual send time.
    pub uncorrected: Latency,
    /// Time from `connect()` to established.
    pub connect: Latency,
    /// Chat: time from a line's send to its arrival at each receiver.
    pub delivery: Latency,
    /// Failures by kind (the whole run, warmup included).
    pub errors: ErrorTally,
    /// Requests due in the measured part: open loop, the schedule's slots
    /// in it; closed loop, the requests sent in it.
    pub scheduled: u64,
    /// Successful requests in the measured part (the completed ones).
    pub requests: u64,
    /// Requests of the measured part that were sent and failed (timeout,
    /// reset, close, protocol error, bad status, interrupted).
    pub failed: u64,
    /// Open loop: slots of the measured part never sent because their
    /// connection was not established when the run ended.
    pub unsent_connection_down: u64,
    /// Open loop: slots of the measured part never sent because their
    /// connection, behind its schedule (catching up after a stall), ran
    /// out of time.
    pub unsent_run_ended: u64,
    /// Per interval of the measured part.
    pub timeline: Timeline,
    /// The run was cut short (Ctrl-C).
    pub interrupted: bool,
    /// When an interrupted run's measured window ended (the latest of the
    /// threads').
    pub ended_at: Option<std::time::Instant>,
    /// A rate plan's steps (`--steps`), each with its own accounting.
    pub steps: Vec<StepStats>,
    /// Requests each sending connection completed in the measured part.
    pub per_connection: Vec<u64>,
    /// Bytes written in the measured part.
    pub bytes_sent: u64,
    /// Bytes read in the measured part.
    pub bytes_received: u64,
    /// Connections established (the whole run).
    pub connects: u64,
    /// Chat: lines delivered in the measured part, over all receivers.
    pub delivered: u64,
    /// Connections open when the run ended.
    pub open_at_end: u64,
    /// Connections still being established when the run ended (the
    /// server's accept queue full: the kernel drops SYNs, the client waits).
    pub connecting_at_end: u64,
}

impl Stats {
    /// Requests due but never sent, for every reason.
    pub fn unsent(&self) -> u64 {
        self.unsent_connection_down + self.unsent_run_ended
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        self.latency.merge(&other.latency);
        self.uncorrected.merge(&other.uncorrected);
        self.connect.merge(&other.connect);
        self.delivery.merge(&other.delivery);
        self.errors.merge(&other.errors);
        self.scheduled += other.scheduled;
        self.requests += other.requests;
        self.failed += other.failed;
        self.unsent_connection_down += other.unsent_connection_down;
        self.unsent_run_ended += other.unsent_run_ended;
        self.timeline.merge(&other.timeline);
        self.interrupted |= other.interrupted;
        if self.steps.len() < other.steps.len() {
            self.steps.resize(other.steps.len(), StepStats::default());
        }
        for (mine, theirs) in self.steps.iter_mut().zip(&other.steps) {
            mine.merge(theirs);
        }
        self.ended_at = self.ended_at.max(other.ended_at);
        self.per_connection.extend_from_slice(&other.per_connection);
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.connects += other.connects;
        self.delivered += other.delivered;
        self.open_at_end += other.open_at_end;
        self.connecting_at_end += other.connecting_at_end;
    }
}

/// What one step of a rate plan measured: its requests are those whose
/// slot falls in it, its errors those that struck during it.
#[derive(Clone, Default)]
pub struct StepStats {
    /// Slots in the step.
    pub scheduled: u64,
    /// Answered successfully.
    pub completed: u64,
    /// Sent and failed.
    pub failed: u64,
    /// Never sent.
    pub unsent: u64,
    /// Latency from the intended send time.
    pub latency: Latency,
    /// Latency from the actual send time.
    pub uncorrected: Latency,
    /// Errors during the step.
    pub errors: ErrorTally,
}

impl StepStats {
    fn merge(&mut self, o: &StepStats) {
        self.scheduled += o.scheduled;
        self.completed += o.completed;
        self.failed += o.failed;
        self.unsent += o.unsent;
        self.latency.merge(&o.latency);
        self.uncorrected.merge(&o.uncorrected);
        self.errors.merge(&o.errors);
    }
}

/// How evenly the server served the connections: requests per connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fairness {
    /// Connections that send requests.
    pub connections: u64,
    /// Fewest requests any connection completed.
    pub requests_per_connection_min: u64,
    /// The median connection's requests.
    pub requests_per_connection_median: u64,
    /// Most requests any connection completed.
    pub requests_per_connection_max: u64,
    /// Connections that completed no request at all.
    pub connections_without_service: u64,
}

impl Fairness {
    /// From the requests each connection completed.
    pub fn of(per_connection: &[u64]) -> Fairness {
        if per_connection.is_empty() {
            return Fairness::default();
        }
        let mut sorted = per_connection.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        };
        Fairness {
            connections: n as u64,
            requests_per_connection_min: sorted[0],
            requests_per_connection_median: median,
            requests_per_connection_max: sorted[n - 1],
            connections_without_service: sorted.iter().take_while(|&&c| c == 0).count() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_starved_half_shows() {
        // 128 connections, 64 served 100 times each, 64 never.
        let mut per = vec![100u64; 64];
        per.extend(vec![0u64; 64]);
        let f = Fairness::of(&per);
        assert_eq!(f.connections, 128);
        assert_eq!(f.requests_per_connection_min, 0);
        assert_eq!(f.requests_per_connection_median, 50);
        assert_eq!(f.requests_per_connection_max, 100);
        assert_eq!(f.connections_without_service, 64);
    }

    #[test]
    fn odd_counts_and_empty() {
        let f = Fairness::of(&[5, 1, 9]);
        assert_eq!(
            (
                f.requests_per_connection_min,
                f.requests_per_connection_median
            ),
            (1, 5)
        );
        assert_eq!(
            (f.requests_per_connection_max, f.connections_without_service),
            (9, 0)
        );
        assert_eq!(Fairness::of(&[]), Fairness::default());
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = Stats {
            requests: 3,
            per_connection: vec![1, 2],
            bytes_sent: 10,
            ..Stats::default()
        };
        a.latency.record(1000);
        let mut b = Stats {
            requests: 4,
            per_connection: vec![4],
            bytes_sent: 5,
            open_at_end: 1,
            ..Stats::default()
        };
        b.latency.record(2000);
        a.merge(&b);
        assert_eq!(a.requests, 7);
        assert_eq!(a.per_connection, vec![1, 2, 4]);
        assert_eq!(a.bytes_sent, 15);
        assert_eq!(a.open_at_end, 1);
        assert_eq!(a.latency.count(), 2);
    }
}
