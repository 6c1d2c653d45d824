//! `spindle load merge A.json B.json ...`: one report from the JSON
//! reports of several loaders run at the same time against one server
//! (each with `--start-at`, on one machine or many; starting them is the
//! user's scheduler's job: ssh, a job runner).
//!
//! Histograms are added, never averaged: every report carries its own
//! (`raw`, HdrHistogram's V2 encoding). Counts, errors and rates are
//! summed; the timeline is aligned on wall-clock time (each run's intervals
//! placed at the nearest whole interval from the earliest start); the
//! report warns when the runs did not overlap.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::codec;
use super::config::{LoadConfig, Workload};
use super::errors::{ErrorCount, ErrorKind};
use super::latency::Latency;
use super::report::{self, Accounting, Raw, Report};
use super::stats::Stats;
use super::timeline::{Bucket, Timeline};

/// Below this share of the shortest run, an overlap is reported as too
/// short to add the runs up.
pub const MIN_OVERLAP: f64 = 0.9;

/// The parts of a JSON report a merge needs.
#[derive(Deserialize)]
struct Input {
    workload: String,
    target: String,
    connections: usize,
    threads: usize,
    mode: String,
    interrupted: bool,
    measured_from_unix_sec: f64,
    duration_sec: f64,
    warmup_sec: f64,
    requests_per_sec: f64,
    accounting: Accounting,
    open_loop: Option<OpenLoopIn>,
    connections_established: u64,
    connections_open_at_end: u64,
    connections_connecting_at_end: u64,
    sent_bytes: u64,
    received_bytes: u64,
    sent_bytes_per_sec: f64,
    received_bytes_per_sec: f64,
    errors: Vec<ErrorCount>,
    chat: Option<ChatIn>,
    interval_sec: f64,
    timeline: Vec<IntervalIn>,
    raw: Raw,
}

#[derive(Deserialize)]
struct OpenLoopIn {
    requested_rate_per_sec: f64,
    achieved_rate_per_sec: f64,
}

#[derive(Deserialize)]
struct ChatIn {
    senders: usize,
    lines_delivered: u64,
    lines_delivered_per_sec: f64,
}

#[derive(Deserialize)]
struct IntervalIn {
    requests: u64,
    failed: u64,
    errors: std::collections::BTreeMap<String, u64>,
}

fn workload_named(name: &str) -> Option<Workload> {
    [
        Workload::Echo,
        Workload::Http,
        Workload::Chat,
        Workload::Idle,
    ]
    .into_iter()
    .find(|w| w.name() == name)
}

/// Reads and merges the reports at `paths` (at least one).
pub fn merge_files(paths: &[impl AsRef<Path>]) -> Result<Report, String> {
    let mut inputs = Vec::with_capacity(paths.len());
    for p in paths {
        let p = p.as_ref();
        let text =
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let input: Input = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: not a `spindle load --json` report of this version: {e}",
                p.display()
            )
        })?;
        inputs.push((p.display().to_string(), input));
    }
    merge(&inputs)
}

fn merge(inputs: &[(String, Input)]) -> Result<Report, String> {
    let Some((first_name, first)) = inputs.first() else {
        return Err("nothing to merge: name the JSON reports".into());
    };
    let workload = workload_named(&first.workload)
        .ok_or_else(|| format!("{first_name}: unknown workload {:?}", first.workload))?;
    for (name, i) in inputs {
        if i.workload != first.workload || i.mode != first.mode {
            return Err(format!(
                "{name} is a {} {} run, {first_name} a {} {} run: only runs of one workload and mode add up",
                i.workload, i.mode, first.workload, first.mode
            ));
        }
        if (i.interval_sec - first.interval_sec).abs() > 1e-9 {
            return Err(format!(
                "{name} has {} s intervals, {first_name} {} s: use one --interval",
                i.interval_sec, first.interval_sec
            ));
        }
    }
    let interval = Duration::from_secs_f64(first.interval_sec.max(1e-9));
    let t0 = inputs
        .iter()
        .map(|(_, i)| i.measured_from_unix_sec)
        .fold(f64::INFINITY, f64::min);
    let t_end = inputs
        .iter()
        .map(|(_, i)| i.measured_from_unix_sec + i.duration_sec)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut stats = Stats {
        timeline: Timeline::assembled(interval),
        ..Stats::default()
    };
    for (name, i) in inputs {
        let hist = |text: &str, what: &str| -> Result<Latency, String> {
            let h = codec::decode::<u64>(text, &format!("{name}: raw.{what}"))?;
            Ok(Latency::from_histogram(&h))
        };
        let mut s = Stats {
            latency: hist(&i.raw.latency, "latency")?,
            uncorrected: hist(&i.raw.uncorrected, "uncorrected")?,
            connect: hist(&i.raw.connect, "connect")?,
            delivery: hist(&i.raw.delivery, "delivery")?,
            scheduled: i.accounting.scheduled,
            requests: i.accounting.completed,
            failed: i.accounting.failed,
            unsent_connection_down: i.accounting.unsent_connection_down,
            unsent_run_ended: i.accounting.unsent_run_ended,
            per_connection: i.raw.requests_per_connection.clone(),
            bytes_sent: i.sent_bytes,
            bytes_received: i.received_bytes,
            connects: i.connections_established,
            delivered: i.chat.as_ref().map_or(0, |c| c.lines_delivered),
            open_at_end: i.connections_open_at_end,
            connecting_at_end: i.connections_connecting_at_end,
            interrupted: i.interrupted,
            ..Stats::default()
        };
        for row in &i.errors {
            s.errors.add_counted(row);
        }
        if i.raw.timeline.len() != i.timeline.len() {
            return Err(format!(
                "{name}: {} timeline intervals but {} histograms",
                i.timeline.len(),
                i.raw.timeline.len()
            ));
        }
        let offset = ((i.measured_from_unix_sec - t0) / first.interval_sec).round() as usize;
        for (j, (iv, h)) in i.timeline.iter().zip(&i.raw.timeline).enumerate() {
            let mut b = Bucket::new();
            b.latency = codec::decode::<u32>(h, &format!("{name}: raw.timeline[{j}]"))?;
            b.completed = iv.requests;
            b.failed = iv.failed;
            for (kind, n) in &iv.errors {
                let kind = ErrorKind::from_name(kind)
                    .ok_or_else(|| format!("{name}: unknown error kind {kind:?}"))?;
                b.errors.insert(kind, *n);
            }
            stats.timeline.place(offset + j, &b)?;
        }
        let timeline = std::mem::take(&mut stats.timeline);
        stats.merge(&s);
        stats.timeline = timeline;
    }
    let sum = |f: &dyn Fn(&Input) -> f64| inputs.iter().map(|(_, i)| f(i)).sum::<f64>();
    let targets: BTreeSet<&str> = inputs.iter().map(|(_, i)| i.target.as_str()).collect();
    let mut config = LoadConfig::new(workload, SocketAddr::from(([0, 0, 0, 0], 0)));
    config.host = targets.into_iter().collect::<Vec<_>>().join(", ");
    config.connections = inputs.iter().map(|(_, i)| i.connections).sum();
    config.threads = inputs.iter().map(|(_, i)| i.threads).sum();
    config.warmup = Duration::from_secs_f64(
        inputs
            .iter()
            .map(|(_, i)| i.warmup_sec)
            .fold(0.0, f64::max)
            .clamp(0.0, 1e9),
    );
    config.senders = inputs
        .iter()
        .map(|(_, i)| i.chat.as_ref().map_or(0, |c| c.senders))
        .sum();
    config.rate = first.open_loop.as_ref().map(|_| {
        sum(&|i| {
            i.open_loop
                .as_ref()
                .map_or(0.0, |o| o.requested_rate_per_sec)
        })
    });
    let longest = inputs
        .iter()
        .map(|(_, i)| i.duration_sec)
        .fold(0.0, f64::max);
    let mut r = Report::new(&config, &stats, longest);
    // Rates are the sums of each run's (a run's own over its own time).
    r.requests_per_sec = sum(&|i| i.requests_per_sec);
    r.sent_bytes_per_sec = sum(&|i| i.sent_bytes_per_sec);
    r.received_bytes_per_sec = sum(&|i| i.received_bytes_per_sec);
    if let Some(o) = r.open_loop.as_mut() {
        o.achieved_rate_per_sec = sum(&|i| {
            i.open_loop
                .as_ref()
                .map_or(0.0, |o| o.achieved_rate_per_sec)
        });
    }
    if let Some(c) = r.chat.as_mut() {
        c.lines_delivered_per_sec =
            sum(&|i| i.chat.as_ref().map_or(0.0, |c| c.lines_delivered_per_sec));
    }
    r.measured_from_unix_sec = t0;
    let span = (t_end - t0).max(0.0);
    r.timeline = report::intervals_of(&stats.timeline, span);
    r.raw = Raw::of(&stats, span);
    // Report::new judged the rate against the longest run's time; judge
    // it again against the summed rates.
    r.warnings.retain(|w| !w.starts_with("achieved "));
    if let Some(o) = &r.open_loop
        && o.achieved_rate_per_sec < o.requested_rate_per_sec * report::RATE_SHORTFALL
        && !r.interrupted
    {
        r.warnings.push(format!(
            "achieved {:.1} requests/s in all, short of the {:.1} requested",
            o.achieved_rate_per_sec, o.requested_rate_per_sec
        ));
    }
    let latest_start = inputs
        .iter()
        .map(|(_, i)| i.measured_from_unix_sec)
        .fold(f64::NEG_INFINITY, f64::max);
    let earliest_end = inputs
        .iter()
        .map(|(_, i)| i.measured_from_unix_sec + i.duration_sec)
        .fold(f64::INFINITY, f64::min);
    let shortest = inputs
        .iter()
        .map(|(_, i)| i.duration_sec)
        .fold(f64::INFINITY, f64::min);
    let overlap = earliest_end - latest_start;
    if overlap <= 0.0 {
        r.warnings.push(format!(
            "the runs did not overlap (the last began {:.2} s after the first ended): \
             their sum is not one load; start them together with --start-at",
            -overlap
        ));
    } else if overlap < shortest * MIN_OVERLAP {
        r.warnings.push(format!(
            "the runs overlapped for only {overlap:.2} s of the shortest's {shortest:.2} s: \
             start them together with --start-at"
        ));
    }
    r.warnings.push(format!(
        "merged from {}",
        super::text::count(inputs.len() as u64, "report", "reports")
    ));
    Ok(r)
}
