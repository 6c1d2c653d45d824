//! The report of a load run: built from the merged [`Stats`], printed for
//! people or serialised as JSON for machines. Every JSON field names its
//! unit (`_per_sec`, `_us`, `_sec`, `bytes_`); plain counts have none.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::config::{LoadConfig, Workload};
use super::errors::{ErrorCount, ErrorKind};
use super::latency::{Latency, LatencySummary};
use super::stats::{Fairness, Stats};
use super::timeline::Timeline;

/// Below this fraction of the requested rate, the report warns that the
/// open-loop target was not reached.
pub const RATE_SHORTFALL: f64 = 0.9;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `echo`, `http`, `chat` or `idle`.
    pub workload: String,
    /// `HOST:PORT` as given.
    pub target: String,
    /// Connections asked for.
    pub connections: usize,
    /// Event-loop threads.
    pub threads: usize,
    /// `closed_loop`, `open_loop`, or `idle` (probes on a fixed schedule).
    pub mode: String,
    /// Ctrl-C cut the run short: everything covers the time measured
    /// until then (`duration_sec`).
    pub interrupted: bool,
    /// When the measured time began, in seconds since the Unix epoch (so
    /// that reports of several loaders can be aligned).
    pub measured_from_unix_sec: f64,
    /// The measured time.
    pub duration_sec: f64,
    /// The warmup before it (not counted).
    pub warmup_sec: f64,
    /// Successful requests in the measured time (chat: lines sent and
    /// seen back by their sender; idle: probes).
    pub requests: u64,
    /// `requests / duration_sec`.
    pub requests_per_sec: f64,
    /// Every request due in the measured time, and what became of it.
    pub accounting: Accounting,
    /// Request latency (open loop: from the intended send time, corrected
    /// for coordinated omission).
    pub latency_us: LatencySummary,
    /// Open loop only: the rates and both latency sets.
    pub open_loop: Option<OpenLoop>,
    /// Time to establish a connection (the whole run).
    pub connect_latency_us: LatencySummary,
    /// Connections established (the whole run, reconnections included).
    pub connections_established: u64,
    /// Connections open when the run ended.
    pub connections_open_at_end: u64,
    /// Connections still connecting when the run ended.
    pub connections_connecting_at_end: u64,
    /// Bytes written in the measured time.
    pub sent_bytes: u64,
    /// Bytes read in the measured time.
    pub received_bytes: u64,
    /// `sent_bytes / duration_sec`.
    pub sent_bytes_per_sec: f64,
    /// `received_bytes / duration_sec`.
    pub received_bytes_per_sec: f64,
    /// Requests per connection, over the connections that send.
    pub fairness: Fairness,
    /// All errors (the whole run, warmup included).
    pub errors_total: u64,
    /// Errors by kind, each with a sample cause.
    pub errors: Vec<ErrorCount>,
    /// Chat only.
    pub chat: Option<ChatReport>,
    /// Idle only: what happened to the held connections.
    pub idle: Option<IdleReport>,
    /// Things the reader must know (a missed rate, starved connections).
    pub warnings: Vec<String>,
    /// A rate plan's steps (`--rate A..B --steps N`), empty otherwise.
    pub steps: Vec<Step>,
    /// The timeline's interval.
    pub interval_sec: f64,
    /// The measured time, interval by interval.
    pub timeline: Vec<Interval>,
    /// The histograms and per-connection counts behind the figures, so
    /// that `spindle load merge` adds histograms instead of averaging
    /// percentiles.
    pub raw: Raw,
    /// The histograms behind the figures, for `--hlog` and `--hgrm`.
    #[serde(skip)]
    pub histograms: Arc<Histograms>,
}

/// A report's histograms as text ([`super::codec::ENCODING`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Raw {
    /// How the histograms are encoded.
    pub encoding: String,
    /// Request latency (corrected in open loop).
    pub latency: String,
    /// Open loop: latency from the actual send time.
    pub uncorrected: String,
    /// Connect latency.
    pub connect: String,
    /// Chat: delivery latency.
    pub delivery: String,
    /// Requests each sending connection completed.
    pub requests_per_connection: Vec<u64>,
    /// Each timeline interval's latency (two significant digits).
    pub timeline: Vec<String>,
}

/// Every request due in the measured time is in exactly one of
/// `completed`, `failed` and `unsent`: `scheduled = completed + failed +
/// unsent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounting {
    /// Requests due: open loop, the schedule's slots in the measured time;
    /// closed loop and chat without `--rate`, the requests sent in it.
    pub scheduled: u64,
    /// Answered successfully (`requests`).
    pub completed: u64,
    /// Sent and failed: timed out, reset, closed, a protocol error or a
    /// bad status, or interrupted by Ctrl-C.
    pub failed: u64,
    /// Due but never sent (open loop only), for either reason below.
    pub unsent: u64,
    /// Unsent: the connection was not established when the run ended
    /// (refused, reconnecting).
    pub unsent_connection_down: u64,
    /// Unsent: the connection was up but behind its schedule (catching up
    /// after a stall) when the run ended.
    pub unsent_run_ended: u64,
}

impl Accounting {
    /// Whether the identity holds.
    pub fn balanced(&self) -> bool {
        self.scheduled == self.completed + self.failed + self.unsent
    }
}

/// One step of a rate plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// The step's rate.
    pub requested_rate_per_sec: f64,
    /// Its start, from the end of the warmup.
    pub start_sec: f64,
    /// Its length (an interrupted run's last may be shorter).
    pub duration_sec: f64,
    /// What became of the step's slots.
    pub accounting: Accounting,
    /// `completed / duration_sec`.
    pub achieved_rate_per_sec: f64,
    /// From each request's intended send time.
    pub corrected_latency_us: LatencySummary,
    /// From each request's actual send time.
    pub uncorrected_latency_us: LatencySummary,
    /// Errors during the step.
    pub errors_total: u64,
    /// By kind.
    pub errors: Vec<ErrorCount>,
}

/// One interval of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    /// Its start, from the end of the warmup.
    pub start_sec: f64,
    /// Its length (the last may be shorter).
    pub duration_sec: f64,
    /// Requests completed in it.
    pub requests: u64,
    /// Requests failed in it.
    pub failed: u64,
    /// Errors in it, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Latency of the requests completed in it (corrected in open loop;
    /// two significant digits).
    pub latency_us: IntervalLatency,
}

/// An interval's latency, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IntervalLatency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The run's histograms (not in the JSON: see `--hlog` and `--hgrm`).
#[derive(Clone, Default)]
pub struct Histograms {
    /// Request latency, in nanoseconds (corrected in open loop).
    pub latency: Latency,
    /// The same, interval by interval.
    pub timeline: Timeline,
}

impl Raw {
    /// The histograms of `stats`, the timeline cut at `measured_sec`.
    pub fn of(stats: &Stats, measured_sec: f64) -> Raw {
        let n = intervals_of(&stats.timeline, measured_sec).len();
        Raw {
            encoding: super::codec::ENCODING.to_string(),
            latency: super::codec::encode(stats.latency.histogram()),
            uncorrected: super::codec::encode(stats.uncorrected.histogram()),
            connect: super::codec::encode(stats.connect.histogram()),
            delivery: super::codec::encode(stats.delivery.histogram()),
            requests_per_connection: stats.per_connection.clone(),
            timeline: stats
                .timeline
                .intervals()
                .iter()
                .take(n)
                .map(|(_, _, b)| super::codec::encode(&b.latency))
                .collect(),
        }
    }
}

impl fmt::Debug for Histograms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Histograms({} samples)", self.latency.count())
    }
}

/// A rate plan's steps, those begun in the measured time.
fn steps_of(config: &LoadConfig, stats: &Stats, measured_sec: f64) -> Vec<Step> {
    let len = config.step_duration.as_secs_f64();
    config
        .steps
        .iter()
        .zip(&stats.steps)
        .enumerate()
        .map(|(i, (&rate, st))| (i as f64 * len, rate, st))
        .take_while(|(start, _, _)| *start < measured_sec || *start == 0.0)
        .map(|(start, rate, st)| {
            let duration = len.min(measured_sec - start).max(1e-9);
            Step {
                requested_rate_per_sec: rate,
                start_sec: start,
                duration_sec: duration,
                accounting: Accounting {
                    scheduled: st.scheduled,
                    completed: st.completed,
                    failed: st.failed,
                    unsent: st.unsent,
                    ..Accounting::default()
                },
                achieved_rate_per_sec: st.completed as f64 / duration,
                corrected_latency_us: st.latency.summary(),
                uncorrected_latency_us: st.uncorrected.summary(),
                errors_total: st.errors.total(),
                errors: st.errors.rows(),
            }
        })
        .collect()
}

/// The timeline's intervals, cut at the measured time.
pub(crate) fn intervals_of(timeline: &Timeline, measured_sec: f64) -> Vec<Interval> {
    let us = |ns: u64| ns as f64 / 1000.0;
    timeline
        .intervals()
        .into_iter()
        .take_while(|(start, _, _)| start.as_secs_f64() < measured_sec || start.is_zero())
        .map(|(start, len, b)| {
            let start_sec = start.as_secs_f64();
            let latency_us = if b.latency.is_empty() {
                IntervalLatency::default()
            } else {
                IntervalLatency {
                    p50: us(b.latency.value_at_quantile(0.5)),
                    p99: us(b.latency.value_at_quantile(0.99)),
                    max: us(b.latency.max()),
                }
            };
            Interval {
                start_sec,
                duration_sec: len.as_secs_f64().min((measured_sec - start_sec).max(0.0)),
                requests: b.completed,
                failed: b.failed,
                errors: b
                    .errors
                    .iter()
                    .map(|(k, n)| (k.name().to_string(), *n))
                    .collect(),
                latency_us,
            }
        })
        .collect()
}

/// The open-loop part of a report.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoop {
    /// `--rate`.
    pub requested_rate_per_sec: f64,
    /// What was achieved.
    pub achieved_rate_per_sec: f64,
    /// From each request's intended send time (the honest one).
    pub corrected_latency_us: LatencySummary,
    /// From each request's actual send time (hides stalls).
    pub uncorrected_latency_us: LatencySummary,
}

/// The chat part of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ChatReport {
    /// Connections that sent lines.
    pub senders: usize,
    /// Marked lines delivered, summed over every receiver.
    pub lines_delivered: u64,
    /// `lines_delivered / duration_sec`.
    pub lines_delivered_per_sec: f64,
    /// From a line's send time to its arrival at each receiver.
    pub delivery_latency_us: LatencySummary,
}

/// The idle part of a report.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Connections established.
    pub established: u64,
    /// Refused.
    pub refused: u64,
    /// Reset by the server.
    pub reset: u64,
    /// Not established within the timeout.
    pub timed_out: u64,
    /// Closed by the server.
    pub closed: u64,
    /// Still held when the run ended.
    pub held_at_end: u64,
    /// Still waiting for the handshake when the run ended.
    pub connecting_at_end: u64,
}

impl Report {
    /// Builds the report of a run of `config` that measured `stats` over
    /// `measured_sec` seconds.
    pub fn new(config: &LoadConfig, stats: &Stats, measured_sec: f64) -> Report {
        let secs = measured_sec.max(1e-9);
        let per_sec = |n: u64| n as f64 / secs;
        let latency = stats.latency.summary();
        let fairness = Fairness::of(&stats.per_connection);
        let mut warnings = Vec::new();
        let open_loop = match (config.workload, config.rate) {
            (Workload::Idle, _) | (_, None) => None,
            (_, Some(rate)) => {
                let achieved = per_sec(stats.requests);
                if achieved < rate * RATE_SHORTFALL && !stats.interrupted {
                    warnings.push(format!(
                        "achieved {achieved:.1} requests/s, short of the {rate:.1} requested: \
                         the server (or this generator) cannot keep up; latencies count the wait"
                    ));
                }
                Some(OpenLoop {
                    requested_rate_per_sec: rate,
                    achieved_rate_per_sec: achieved,
                    corrected_latency_us: latency.clone(),
                    uncorrected_latency_us: stats.uncorrected.summary(),
                })
            }
        };
        if fairness.connections_without_service > 0 {
            warnings.push(format!(
                "{} of {} connections got no service at all",
                fairness.connections_without_service, fairness.connections
            ));
        }
        if stats.requests == 0 && fairness.connections > 0 {
            warnings.push("no request succeeded".to_string());
        }
        let accounting = Accounting {
            scheduled: stats.scheduled,
            completed: stats.requests,
            failed: stats.failed,
            unsent: stats.unsent(),
            unsent_connection_down: stats.unsent_connection_down,
            unsent_run_ended: stats.unsent_run_ended,
        };
        if !accounting.balanced() {
            warnings.push(format!(
                "the accounting does not add up ({} scheduled, {} completed, {} failed, {} unsent): \
                 a bug in spindle load, please report it",
                accounting.scheduled, accounting.completed, accounting.failed, accounting.unsent
            ));
        }
        if accounting.unsent > 0 {
            warnings.push(format!(
                "{} of the {} requests due were never sent: see unsent",
                accounting.unsent, accounting.scheduled
            ));
        }
        if stats.interrupted {
            warnings.push(format!(
                "interrupted: the figures cover the {measured_sec:.2} s measured before Ctrl-C"
            ));
        }
        let chat = (config.workload == Workload::Chat).then(|| ChatReport {
            senders: config.senders,
            lines_delivered: stats.delivered,
            lines_delivered_per_sec: per_sec(stats.delivered),
            delivery_latency_us: stats.delivery.summary(),
        });
        let idle = (config.workload == Workload::Idle).then(|| IdleReport {
            established: stats.connects,
            refused: stats.errors.count(ErrorKind::Refused),
            reset: stats.errors.count(ErrorKind::Reset),
            timed_out: stats.errors.count(ErrorKind::Timeout),
            closed: stats.errors.count(ErrorKind::Closed),
            held_at_end: stats.open_at_end,
            connecting_at_end: stats.connecting_at_end,
        });
        Report {
            workload: config.workload.name().to_string(),
            target: config.host.clone(),
            connections: config.connections,
            threads: config.threads,
            mode: match (config.workload, config.rate) {
                // Idle probes keep their own fixed schedule.
                (Workload::Idle, _) => "idle",
                (_, Some(_)) => "open_loop",
                (_, None) => "closed_loop",
            }
            .to_string(),
            interrupted: stats.interrupted,
            measured_from_unix_sec: 0.0,
            duration_sec: measured_sec,
            warmup_sec: config.warmup.as_secs_f64(),
            requests: stats.requests,
            requests_per_sec: per_sec(stats.requests),
            accounting,
            latency_us: latency,
            open_loop,
            connect_latency_us: stats.connect.summary(),
            connections_established: stats.connects,
            connections_open_at_end: stats.open_at_end,
            connections_connecting_at_end: stats.connecting_at_end,
            sent_bytes: stats.bytes_sent,
            received_bytes: stats.bytes_received,
            sent_bytes_per_sec: per_sec(stats.bytes_sent),
            received_bytes_per_sec: per_sec(stats.bytes_received),
            fairness,
            errors_total: stats.errors.total(),
            errors: stats.errors.rows(),
            chat,
            idle,
            warnings,
            steps: steps_of(config, stats, measured_sec),
            interval_sec: stats.timeline.interval().as_secs_f64(),
            timeline: intervals_of(&stats.timeline, measured_sec),
            raw: Raw::of(stats, measured_sec),
            histograms: Arc::new(Histograms {
                latency: stats.latency.clone(),
                timeline: stats.timeline.clone(),
            }),
        }
    }

    /// Whether anything succeeded: a request, or for idle runs (whose
    /// point is holding connections), a connection.
    pub fn succeeded(&self) -> bool {
        match &self.idle {
            Some(idle) => idle.established > 0,
            None => self.requests > 0,
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::load::errors::Fault;

    fn config(workload: Workload, rate: Option<f64>) -> LoadConfig {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut c = LoadConfig::new(workload, addr);
        c.connections = 4;
        c.rate = rate;
        c.warmup = Duration::from_millis(500);
        c
    }

    fn stats() -> Stats {
        let mut s = Stats {
            requests: 1000,
            per_connection: vec![500, 500, 0, 0],
            bytes_sent: 64_000,
            bytes_received: 64_000,
            connects: 4,
            open_at_end: 4,
            ..Stats::default()
        };
        for i in 0..1000u64 {
            s.latency.record(50_000 + i);
            s.uncorrected.record(40_000);
        }
        s.errors.add(&Fault::new(
            ErrorKind::Reset,
            "read: Connection reset by peer",
        ));
        s
    }

    #[test]
    fn closed_loop_rates_and_fields() {
        let r = Report::new(&config(Workload::Echo, None), &stats(), 2.0);
        assert_eq!(r.requests_per_sec, 500.0);
        assert_eq!(r.sent_bytes_per_sec, 32_000.0);
        assert_eq!(r.mode, "closed_loop");
        assert!(r.open_loop.is_none() && r.chat.is_none() && r.idle.is_none());
        assert_eq!(r.fairness.connections_without_service, 2);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("2 of 4 connections got no service"))
        );
        assert!(r.succeeded());
        let text = r.to_string();
        for needle in [
            "500.0/s",
            "p99.99",
            "us",
            "reset",
            "Connection reset by peer",
            "2 of 4 connections got none",
            "KiB",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }

    #[test]
    fn open_loop_shortfall_warns_and_shows_both_latencies() {
        let r = Report::new(&config(Workload::Http, Some(1000.0)), &stats(), 2.0);
        let o = r.open_loop.as_ref().unwrap();
        assert_eq!(o.requested_rate_per_sec, 1000.0);
        assert_eq!(o.achieved_rate_per_sec, 500.0);
        assert!(o.corrected_latency_us.p50 > o.uncorrected_latency_us.p50);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("short of the 1000.0 requested"))
        );
        assert!(r.to_string().contains("uncorrected"));
        // Achieving the rate: no warning.
        let r = Report::new(&config(Workload::Http, Some(500.0)), &stats(), 2.0);
        assert!(!r.warnings.iter().any(|w| w.contains("requested")));
    }

    #[test]
    fn json_names_units() {
        let r = Report::new(&config(Workload::Chat, None), &stats(), 2.0);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["requests_per_sec"], 500.0);
        assert!(v["latency_us"]["p99_9"].is_number());
        assert!(v["chat"]["lines_delivered_per_sec"].is_number());
        assert_eq!(v["errors"][0]["kind"], "reset");
        assert!(v["open_loop"].is_null());
    }

    #[test]
    fn nothing_succeeded() {
        let r = Report::new(&config(Workload::Echo, None), &Stats::default(), 1.0);
        assert!(!r.succeeded());
        assert!(r.to_string().contains("errors       none"));
    }

    #[test]
    fn the_accounting_is_shown_and_checked() {
        let mut s = stats();
        s.scheduled = 1010;
        s.failed = 4;
        s.unsent_connection_down = 5;
        s.unsent_run_ended = 1;
        let r = Report::new(&config(Workload::Echo, Some(505.0)), &s, 2.0);
        assert!(r.accounting.balanced(), "{r}");
        let text = r.to_string();
        assert!(
            text.contains("1010 scheduled = 1000 completed + 4 failed + 6 unsent"),
            "{text}"
        );
        assert!(text.contains("5 connection down, 1 run ended"), "{text}");
        assert!(r.warnings.iter().any(|w| w.contains("6 of the 1010")));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["accounting"]["unsent_connection_down"], 5);
        // A count that went missing is reported, not hidden.
        s.scheduled = 1011;
        let r = Report::new(&config(Workload::Echo, Some(505.0)), &s, 2.0);
        assert!(!r.accounting.balanced());
        assert!(r.warnings.iter().any(|w| w.contains("does not add up")));
        assert!(
            text.lines()
                .all(|l| l.chars().count() <= crate::load::text::WIDTH)
        );
    }

    #[test]
    fn a_timeline_row_with_many_error_kinds_stays_in_80_columns() {
        let mut r = Report::new(&config(Workload::Http, Some(500.0)), &stats(), 2.0);
        let errors: BTreeMap<String, u64> = ["closed", "timeout", "refused", "reset", "protocol"]
            .iter()
            .map(|k| (k.to_string(), 12_345))
            .collect();
        r.timeline.push(Interval {
            start_sec: 7.0,
            duration_sec: 1.0,
            requests: 0,
            failed: 61_725,
            errors,
            latency_us: IntervalLatency::default(),
        });
        let text = r.text(true);
        assert!(
            text.lines()
                .all(|l| l.chars().count() <= crate::load::text::WIDTH),
            "{text}"
        );
        for kind in ["closed", "timeout", "refused", "reset", "protocol"] {
            assert!(text.contains(&format!("{kind} 12345")), "{kind}: {text}");
        }
    }
}
