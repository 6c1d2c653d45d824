//! The report of a load run: built from the merged [`Stats`], printed for
//! people or serialised as JSON for machines. Every JSON field names its
//! unit (`_per_sec`, `_us`, `_sec`, `bytes_`); plain counts have none.

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::config::{LoadConfig, Workload};
use super::errors::{ErrorCount, ErrorKind};
use super::latency::LatencySummary;
use super::stats::{Fairness, Stats};

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
    /// `closed_loop` or `open_loop`.
    pub mode: String,
    /// The measured time.
    pub duration_sec: f64,
    /// The warmup before it (not counted).
    pub warmup_sec: f64,
    /// Successful requests in the measured time (chat: lines sent and
    /// seen back by their sender; idle: probes).
    pub requests: u64,
    /// `requests / duration_sec`.
    pub requests_per_sec: f64,
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
                if achieved < rate * RATE_SHORTFALL {
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
        });
        Report {
            workload: config.workload.name().to_string(),
            target: config.host.clone(),
            connections: config.connections,
            threads: config.threads,
            mode: if config.rate.is_some() && config.workload != Workload::Idle {
                "open_loop"
            } else {
                "closed_loop"
            }
            .to_string(),
            duration_sec: measured_sec,
            warmup_sec: config.warmup.as_secs_f64(),
            requests: stats.requests,
            requests_per_sec: per_sec(stats.requests),
            latency_us: latency,
            open_loop,
            connect_latency_us: stats.connect.summary(),
            connections_established: stats.connects,
            connections_open_at_end: stats.open_at_end,
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

/// `p50 12.3 us  p90 ...` for a latency line.
fn latency_line(l: &LatencySummary) -> String {
    if l.count == 0 {
        return "no samples".to_string();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  (mean {}, stdev {}, {} samples)",
        us(l.p50),
        us(l.p90),
        us(l.p99),
        us(l.p99_9),
        us(l.p99_99),
        us(l.max),
        us(l.mean),
        us(l.stdev),
        l.count
    )
}

/// Microseconds with a readable unit.
fn us(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.2} s", v / 1_000_000.0)
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.1} us")
    }
}

/// Bytes with a binary unit.
fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        let threads = if self.threads == 1 {
            "thread"
        } else {
            "threads"
        };
        let _ = writeln!(
            s,
            "{} load on {}: {} connections, {} {threads}, {:.2} s measured ({}, warmup {:.2} s)",
            self.workload,
            self.target,
            self.connections,
            self.threads,
            self.duration_sec,
            self.mode.replace('_', " "),
            self.warmup_sec
        );
        let what = match self.workload.as_str() {
            "chat" => "lines sent",
            "idle" => "probes",
            _ => "requests",
        };
        let _ = writeln!(
            s,
            "  {what:<12} {} ({:.1}/s)",
            self.requests, self.requests_per_sec
        );
        match &self.open_loop {
            Some(o) => {
                let _ = writeln!(
                    s,
                    "  rate         requested {:.1}/s, achieved {:.1}/s",
                    o.requested_rate_per_sec, o.achieved_rate_per_sec
                );
                let _ = writeln!(
                    s,
                    "  latency      {}",
                    latency_line(&o.corrected_latency_us)
                );
                let _ = writeln!(
                    s,
                    "  uncorrected  {}",
                    latency_line(&o.uncorrected_latency_us)
                );
            }
            None => {
                let _ = writeln!(s, "  latency      {}", latency_line(&self.latency_us));
            }
        }
        if let Some(c) = &self.chat {
            let _ = writeln!(
                s,
                "  delivered    {} lines ({:.1} lines/s) from {} senders",
                c.lines_delivered, c.lines_delivered_per_sec, c.senders
            );
            let _ = writeln!(s, "  delivery     {}", latency_line(&c.delivery_latency_us));
        }
        let _ = writeln!(
            s,
            "  connect      {}",
            latency_line(&self.connect_latency_us)
        );
        let _ = writeln!(
            s,
            "  connections  {} established, {} open at the end",
            self.connections_established, self.connections_open_at_end
        );
        if let Some(i) = &self.idle {
            let _ = writeln!(
                s,
                "  idle         {} established, {} refused, {} reset, {} timed out, {} closed by the server, {} held at the end",
                i.established, i.refused, i.reset, i.timed_out, i.closed, i.held_at_end
            );
        }
        let _ = writeln!(
            s,
            "  bytes        sent {} ({}/s), received {} ({}/s)",
            bytes(self.sent_bytes as f64),
            bytes(self.sent_bytes_per_sec),
            bytes(self.received_bytes as f64),
            bytes(self.received_bytes_per_sec)
        );
        let fr = &self.fairness;
        if fr.connections > 0 {
            let _ = writeln!(
                s,
                "  fairness     {what} per connection: min {}, median {}, max {}; {} of {} connections got none",
                fr.requests_per_connection_min,
                fr.requests_per_connection_median,
                fr.requests_per_connection_max,
                fr.connections_without_service,
                fr.connections
            );
        }
        if self.errors.is_empty() {
            let _ = writeln!(s, "  errors       none");
        } else {
            let _ = writeln!(
                s,
                "  errors       {} in all (warmup included)",
                self.errors_total
            );
            for e in &self.errors {
                let _ = writeln!(
                    s,
                    "    {:<10} {:>8}  e.g. {}",
                    e.kind.name(),
                    e.count,
                    e.sample
                );
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        f.write_str(&s)
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
            "got none",
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
}
